"""MMEarth's ``<dataset>_band_stats.json`` → a release's ``normalisation``.

The file lists, per key, ``mean``/``std``/``min``/``max`` per band; Sentinel-2 has one
entry per processing level (``sentinel2_l1c``, ``sentinel2_l2a``), 13 bands in the HDF5
order (B1 … B8A, B8, B9, B10, B11, B12). The checkpoints carry no statistics.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from mpmae.mmearth_ckpt.errors import CheckpointError
from mpmae.modalities import S2_BANDS, S2_LEVELS, band_indices

RECIPE = ("z = (raw - mean) / std per band, with the statistics of the tile's processing "
          "level (l1c or l2a); missing values → 0 after z-scoring")
NO_STATS = {
    "recipe": RECIPE,
    "missing": "MMEarth's band statistics are not part of the checkpoint: evaluate with "
               "normalise=dataset (the default), or import again with --stats "
               "<dataset>_band_stats.json",
}


def read_stats(path: Path, bands: tuple[str, ...]) -> dict:
    """The normalisation for ``bands`` from an MMEarth band_stats.json."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"--stats {path} not found: pass MMEarth's "
                              "<dataset>_band_stats.json") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"--stats {path} is not readable JSON ({e})") from None
    levels = {level: _level(doc, level, bands, path) for level in S2_LEVELS
              if isinstance(doc, dict) and f"sentinel2_{level}" in doc}
    if not levels:
        raise CheckpointError(f"--stats {path} has neither 'sentinel2_l1c' nor "
                              "'sentinel2_l2a': pass MMEarth's <dataset>_band_stats.json")
    return {"recipe": RECIPE, "from": path.name, **levels}


def _level(doc: dict, level: str, bands: tuple[str, ...], path: Path) -> dict:
    key = f"sentinel2_{level}"
    entry, index = doc[key], band_indices(bands, S2_BANDS)
    out = {}
    for stat in ("mean", "std"):
        values = entry.get(stat) if isinstance(entry, dict) else None
        if not isinstance(values, list) or len(values) != len(S2_BANDS):
            raise CheckpointError(f"--stats {path}: '{key}' needs a '{stat}' list of "
                                  f"{len(S2_BANDS)} numbers (B1 … B12 with B10)")
        picked = [values[i] for i in index]
        if not all(_usable(v, stat) for v in picked):
            raise CheckpointError(f"--stats {path}: '{key}' {stat} of {', '.join(bands)} "
                                  f"must be finite numbers{' above 0' if stat == 'std' else ''}"
                                  f", got {picked}")
        out[stat] = [float(v) for v in picked]
    return out


def _usable(value: object, stat: str) -> bool:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return ok and (stat != "std" or value > 0)
