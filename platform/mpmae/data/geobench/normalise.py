"""``band_stats.json``: each dataset's own band statistics, as the encoder input's mean/std.

MMEarth normalises GEO-Bench inputs with the dataset's statistics (not pretraining's).
They are keyed by GEO-Bench band name, so they apply after matching; a filled band uses
its source band's statistics, as its values are that band's.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mpmae.data.geobench.bands import BandMatch
from mpmae.data.geobench.errors import GeoBenchError
from mpmae.data.geobench.json_file import read_json_object

BAND_STATS_FILE = "band_stats.json"
# MMEarth's reference divides m-so2sat's band statistics by 10 000 before normalising; the
# same scaling keeps our So2Sat scores comparable with the paper's.
STATS_SCALE = {"m-so2sat": 1e-4}


class BandStats(NamedTuple):
    mean: float
    std: float


class InputStats(NamedTuple):
    """Per input band, in the encoder's order: ``mean`` and ``std``, float32 (C,)."""

    mean: np.ndarray
    std: np.ndarray


def read_band_stats(folder: Path) -> dict[str, BandStats]:
    """GEO-Bench band name → (mean, std) from ``<folder>/band_stats.json``."""
    path = folder / BAND_STATS_FILE
    if not path.exists():
        raise GeoBenchError(f"{path} not found: GEO-Bench datasets ship one; download the "
                            "dataset again")
    doc = read_json_object(path, "an object of band name → statistics",
                           "download the dataset again")
    return {name: _band_stats(path, name, stats) for name, stats in doc.items()}


def _band_stats(path: Path, name: str, stats: object) -> BandStats:
    try:
        mean, std = float(stats["mean"]), float(stats["std"])  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        raise GeoBenchError(f"{path}: band {name!r} has no numeric mean and std") from None
    return BandStats(mean, std)


def input_stats(match: BandMatch, stats: dict[str, BandStats], scale: float = 1.0) -> InputStats:
    """Mean and std for each of ``match.input_bands``, from the source band's statistics,
    times ``scale``."""
    missing = sorted({s for s in match.sources if s not in stats})
    if missing:
        raise GeoBenchError(f"{match.dataset}: {BAND_STATS_FILE} has no statistics for "
                            f"bands {missing}; download the dataset again")
    unusable = sorted({s for s in match.sources
                       if not (math.isfinite(stats[s].std) and stats[s].std > 0)})
    if unusable:
        raise GeoBenchError(f"{match.dataset}: {BAND_STATS_FILE} gives bands {unusable} a "
                            "std that is not positive; they cannot be normalised")
    mean = np.array([stats[s].mean * scale for s in match.sources], dtype=np.float32)
    std = np.array([stats[s].std * scale for s in match.sources], dtype=np.float32)
    return InputStats(mean, std)


def normalise(inputs: np.ndarray, stats: InputStats) -> np.ndarray:
    """(C, H, W) or (B, C, H, W) inputs z-scored per band."""
    shape = (-1, 1, 1)
    return ((inputs - stats.mean.reshape(shape)) / stats.std.reshape(shape)).astype(np.float32)
