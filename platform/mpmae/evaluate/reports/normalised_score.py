"""GEO-Bench's normalised score: a benchmark folder's ``normalizer.json`` maps each dataset
to the ``[low, high]`` range of scores its baselines reached, and a score becomes
``(score - low) / (high - low)`` (geobench's ``plot_tools.Normalizer``; not clipped, so a
score under the weakest baseline is negative). GEO-Bench ships the file for
``classification_v1.0``; the column appears only for datasets a file names.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from mpmae.data.geobench.errors import GeoBenchError
from mpmae.data.geobench.json_file import read_json_object

NORMALIZER_FILE = "normalizer.json"


class Bounds(NamedTuple):
    low: float
    high: float

    def normalise(self, score: float) -> float:
        return (score - self.low) / (self.high - self.low)


def read_normalizer(path: Path) -> dict[str, Bounds]:
    """Dataset name → its bounds, from one ``normalizer.json``."""
    doc = read_json_object(path, "an object of dataset name → [low, high]",
                           "fix it, or remove it to evaluate without normalised scores")
    return {name: _bounds(path, name, value) for name, value in doc.items()}


def _bounds(path: Path, name: str, value: object) -> Bounds:
    numbers = (isinstance(value, list) and len(value) == 2
               and all(isinstance(v, int | float) and not isinstance(v, bool)
                       and math.isfinite(v) for v in value))
    if not numbers:
        raise GeoBenchError(f"{path}: {name!r} must be [low, high], two finite numbers; "
                            f"got {json.dumps(value)[:60]}")
    low, high = float(value[0]), float(value[1])  # type: ignore[index]
    if not low < high:
        raise GeoBenchError(f"{path}: {name!r} has low {low:g} not below high {high:g}; "
                            "fix the bounds")
    return Bounds(low, high)


def benchmark_bounds(dataset_folders: Iterable[Path]) -> dict[str, Bounds]:
    """The bounds of each dataset that its benchmark folder (the dataset folder's parent,
    as GEO-Bench lays them out) names in a ``normalizer.json``."""
    found: dict[str, Bounds] = {}
    read: dict[Path, dict[str, Bounds]] = {}
    for folder in dataset_folders:
        path = folder.resolve().parent / NORMALIZER_FILE
        if path not in read:
            read[path] = read_normalizer(path) if path.is_file() else {}
        if folder.name in read[path]:
            found[folder.name] = read[path][folder.name]
    return found
