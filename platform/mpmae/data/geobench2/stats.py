"""The benchmark's published band statistics, per normalisation scheme.

GEO-Bench-2 ships two files per dataset, ``dataset_stats_satmae/<name>/<name>_stats.json``
and ``dataset_stats_clip_rescale/<name>/<name>_stats.json``: under ``input_stats``, per
modality ``image_<modality>``, the lists ``band_names``, ``mean`` and ``std`` (and more:
``min``/``max``, percentiles, ``norm_mean``/``norm_std`` and ``clip_min_used``/
``clip_max_used`` for the clip-rescale scheme). We read the per-band mean and std of the
raw values, keyed by band name, as data/geobench's ``BandStats``, so its ``input_stats``
applies after band matching as it does for GEO-Bench v1; ``schemes.py`` reads the rest and
applies each scheme as the benchmark does.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mpmae.data.geobench.normalise import BandStats
from mpmae.data.geobench2.catalog import STATS_SCHEMES, DatasetInfo
from mpmae.data.geobench2.errors import GeoBench2Error


def stats_file(root: Path, scheme: str, dataset: str) -> Path:
    """Where the benchmark keeps ``dataset``'s statistics for ``scheme`` under ``root``."""
    if scheme not in STATS_SCHEMES:
        raise GeoBench2Error(f"normalisation scheme {scheme!r} is not one of "
                             f"{list(STATS_SCHEMES)}")
    return root / f"dataset_stats_{scheme}" / dataset / f"{dataset}_stats.json"


def read_band_stats(path: Path, info: DatasetInfo) -> dict[str, BandStats]:
    """Band name → (mean, std) for every band of ``info``'s modalities found in ``path``."""
    found: dict[str, BandStats] = {}
    for key, block in modality_blocks(path, info).items():
        found.update(_block(path, key, block))
    return found


def modality_blocks(path: Path, info: DatasetInfo) -> dict[str, Any]:
    """Modality key → its ``input_stats`` block in ``path``, for ``info``'s modalities that
    the file covers (a one-modality dataset's block may be called plain ``image``)."""
    doc = _read_json(path)
    inputs = doc.get("input_stats")
    if not isinstance(inputs, dict):
        raise GeoBench2Error(f"{path}: no 'input_stats' object; is it a GEO-Bench-2 "
                             "statistics file?")
    found: dict[str, Any] = {}
    for modality in info.modalities:
        block = inputs.get(f"image_{modality.key}")
        if block is None and len(info.modalities) == 1:
            block = inputs.get("image")
        if block is not None:
            found[modality.key] = block
    if not found:
        raise GeoBench2Error(f"{path}: no statistics for {info.name}'s modalities "
                             f"{[m.key for m in info.modalities]}; is it {info.name}'s file?")
    return found


def _block(path: Path, key: str, block: Any) -> dict[str, BandStats]:
    try:
        names, means, stds = block["band_names"], block["mean"], block["std"]
        pairs = {str(n): BandStats(float(m), float(s))
                 for n, m, s in zip(names, means, stds, strict=True)}
    except (TypeError, KeyError, ValueError):
        raise GeoBench2Error(f"{path}: image_{key} has no band_names with one numeric mean "
                             "and std each; download the file again") from None
    bad = [n for n, s in pairs.items() if not (math.isfinite(s.std) and s.std > 0)]
    if bad:
        raise GeoBench2Error(f"{path}: image_{key} gives bands {bad} a std that is not "
                             "positive; they cannot be normalised")
    return pairs


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise GeoBench2Error(f"{path}: not readable JSON ({type(exc).__name__}); take it from "
                             "GEO-Bench-2's geobench_v2/datamodules/dataset_stats_<scheme>/"
                             ) from None
    if not isinstance(doc, dict):
        raise GeoBench2Error(f"{path}: expected a JSON object")
    return doc
