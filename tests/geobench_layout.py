"""GEO-Bench v1.0 fixtures for the reader's tests, written with the product's writer
(:mod:`mpmae.data.geobench.writer`): datasets whose every band holds a distinct
constant (so a test can tell which band it got), and hostile pickles."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mpmae.data.geobench.writer import (
    SENTINEL2_13,
    BandInfo,
    Classification,
    MultiLabelClassification,
    SegmentationClasses,
    Sentinel1,
    TaskSpecifications,
    write_band_stats,
    write_partition,
    write_sample,
    write_task_specs,
)

SENTINEL1_8 = [
    Sentinel1("01 - VH.Real", spatial_resolution=10),
    Sentinel1("02 - VH.Imaginary", spatial_resolution=10),
    Sentinel1("03 - VV.Real", spatial_resolution=10),
    Sentinel1("04 - VV.Imaginary", spatial_resolution=10),
    Sentinel1("05 - VH.LEE Filtered", spatial_resolution=10),
    Sentinel1("06 - VV.LEE Filtered", spatial_resolution=10),
    Sentinel1("07 - VH.LEE Filtered.Real", spatial_resolution=10),
    Sentinel1("08 - VV.LEE Filtered.Imaginary", spatial_resolution=10),
]
# So2Sat (make_benchmark/dataset_converters/so2sat.py): no 01, 09, 10
SO2SAT_BANDS = SENTINEL1_8 + SENTINEL2_13[1:9] + SENTINEL2_13[-2:]
# BigEarthNet: no 10
BIGEARTHNET_BANDS = SENTINEL2_13[0:10] + SENTINEL2_13[-2:]

# Every band holds one distinct constant, so a test can tell which band it got.
BAND_VALUE = {b.name: 100 * (i + 1) for i, b in enumerate(SENTINEL2_13)}
BAND_VALUE |= {b.name: 5000 + 10 * i for i, b in enumerate(SENTINEL1_8)}
# ... and distinct statistics: mean = value / 2, std = value / 10
BAND_STATS = {name: (value / 2, value / 10) for name, value in BAND_VALUE.items()}



# --- files ----------------------------------------------------------------------------------


def write_fixture_stats(folder: Path, bands_info: Sequence[BandInfo]) -> None:
    stats = {}
    for info in bands_info:
        mean, std = BAND_STATS[info.name]
        stats[info.name] = {"min": 0.0, "max": 2 * mean, "mean": mean, "std": std,
                            "median": mean, "percentile_0_1": 0.0, "percentile_1": 0.0,
                            "percentile_5": 0.0, "percentile_95": 2 * mean,
                            "percentile_99": 2 * mean, "percentile_99_9": 2 * mean}
    write_band_stats(folder, stats)


SPLIT_SIZES = {"train": 10, "valid": 3, "test": 3}


def write_dataset(folder: Path, bands_info: Sequence[BandInfo], label_type: Any,
                  labels: Any, size: int = 8, package: str = "geobench") -> Path:
    """A whole dataset: ``labels(i)`` gives sample i's label; samples ``s0000`` … split
    10/3/3; ``default`` links to ``original`` (as geobench saves it) and ``0.20x_train``
    keeps the first 2 train samples."""
    folder.mkdir(parents=True)
    write_task_specs(folder, TaskSpecifications(folder.name, list(bands_info), 10.0,
                                                (size, size), label_type), package)
    write_fixture_stats(folder, bands_info)
    names: dict[str, list[str]] = {}
    index = 0
    for split, count in SPLIT_SIZES.items():
        names[split] = []
        for _ in range(count):
            name = f"s{index:04d}"
            bands = {b: np.full((size, size), BAND_VALUE[b.name], np.int16) for b in bands_info}
            write_sample(folder, name, bands, labels(index), package)
            names[split].append(name)
            index += 1
    write_partition(folder, "original", names)
    os.symlink("original_partition.json", folder / "default_partition.json")
    write_partition(folder, "0.20x_train", {**names, "train": names["train"][:2]})
    return folder


EUROSAT_CLASSES = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
                   "Pasture", "PermanentCrop", "Residential", "River", "SeaLake")


def eurosat_like(root: Path, package: str = "geobench") -> Path:
    """13 Sentinel-2 bands, 10-class single-label classification."""
    return write_dataset(root / "m-eurosat", SENTINEL2_13,
                         Classification(10, EUROSAT_CLASSES), lambda i: i % 10,
                         package=package)


def so2sat_like(root: Path) -> Path:
    """8 Sentinel-1 bands and Sentinel-2 without B1, B9, B10; 17 classes, no class names."""
    return write_dataset(root / "m-so2sat", SO2SAT_BANDS, Classification(17),
                         lambda i: np.int64(i % 17))


def bigearthnet_like(root: Path, n_classes: int = 5) -> Path:
    """12 Sentinel-2 bands (no B10), multi-label: sample i has classes i % n and (i+1) % n."""
    def multi_hot(i: int) -> np.ndarray:
        vector = np.zeros(n_classes, np.int64)
        vector[[i % n_classes, (i + 1) % n_classes]] = 1
        return vector

    names = [f"class {k}" for k in range(n_classes)]
    return write_dataset(root / "m-bigearthnet", BIGEARTHNET_BANDS,
                         MultiLabelClassification(n_classes, names), multi_hot)


SEGMENTATION_LABEL = SegmentationClasses("label", 10, n_classes=3,
                                         class_names=["background", "crop", "tree"])


def class_map(i: int, size: int = 8) -> np.ndarray:
    """Sample i's (size, size) segmentation map: rows cycle through the 3 classes."""
    return ((np.arange(size)[:, None] + i) % 3 * np.ones((1, size))).astype(np.int16)


def segmentation_like(root: Path) -> Path:
    """13 Sentinel-2 bands and a 3-class ``label`` band."""
    return write_dataset(root / "m-cashew-plant", SENTINEL2_13, SEGMENTATION_LABEL,
                         lambda i: (SEGMENTATION_LABEL, class_map(i)))


# The bounds geobench ships in classification_v1.0/normalizer.json for these datasets.
NORMALIZER_BOUNDS = {"m-eurosat": [0.907, 0.985], "m-so2sat": [0.449, 0.610],
                     "m-bigearthnet": [0.602, 0.706], "m-brick-kiln": [0.974, 0.991]}


def write_normalizer(root: Path, bounds: dict[str, Any] | None = None) -> Path:
    """A benchmark folder's ``normalizer.json`` as geobench saves it (``json.dump`` of
    dataset → (low, high), indent 2)."""
    path = root / "normalizer.json"
    path.write_text(json.dumps(NORMALIZER_BOUNDS if bounds is None else bounds, indent=2))
    return path


def set_pickle_attribute(path: Path, text: str) -> None:
    """Replace a sample file's ``pickle`` attribute (for hostile or malformed ones)."""
    with h5py.File(path, "a") as fp:
        fp.attrs["pickle"] = text


# --- hostile pickles -------------------------------------------------------------------------


class CallsOnLoad:
    """Pickles as ``call(*args)``: what a hostile file does to run code when unpickled."""

    def __init__(self, call: Any, *args: Any) -> None:
        self.call, self.args = call, args

    def __reduce__(self) -> tuple:
        return self.call, self.args
