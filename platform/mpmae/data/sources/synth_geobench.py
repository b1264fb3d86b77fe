"""The synthetic world's labelled set as GEO-Bench v1.0 datasets, so that ``mpmae evaluate``
runs on the embedded default with no download, through the same reader as real GEO-Bench.

Two datasets under ``<dest>/geobench/``: ``synth-landscape`` (9-class classification of a
tile's landscape) and ``synth-landcover`` (segmentation of its Dynamic-World-like land
cover; class 0 is "no data"). Same tiles, splits (train/valid/test) and seed as the
``downstream/`` tile set; label-efficiency partitions 0.01x … 1.00x of train as GEO-Bench
has them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mpmae.data.geobench.writer import (
    SENTINEL2_13,
    Classification,
    SegmentationClasses,
    TaskSpecifications,
    band_stats,
    write_band_stats,
    write_partition,
    write_sample,
    write_task_specs,
)
from mpmae.data.sources.synth_world import LANDSCAPE_CLASSES, world_chunks
from mpmae.modalities import DW_CLASSES, S2_BANDS
from mpmae.storage import Location

GEOBENCH_DIR = "geobench"
CLASSIFICATION, SEGMENTATION = "synth-landscape", "synth-landcover"
FRACTIONS = (0.01, 0.02, 0.05, 0.10, 0.20, 0.50, 1.00)
SPLIT_NAMES = {"train": "train", "val": "valid", "test": "test"}
# Our names of GEO-Bench's Sentinel-2 bands, in its order (B8 before B8A there).
GEOBENCH_ORDER = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11",
                  "B12")
STATS_STRIDE = 4  # every 4th pixel per axis is plenty for the statistics


def write_geobench_sets(root: Location, tiles: int, size: int, seed: int,
                        progress: Callable[[str], None]) -> None:
    """Write both datasets to ``root/geobench`` (locally, or through a temporary folder
    uploaded file by file to object storage)."""
    target = root.join(GEOBENCH_DIR)
    if not target.is_s3:
        _write(Path(target.path), tiles, size, seed)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            _write(Path(tmp), tiles, size, seed)
            for file in sorted(Path(tmp).rglob("*")):
                if file.is_file():
                    rel = file.relative_to(tmp).parts
                    target.join(*rel).write_bytes_atomic(file.read_bytes())
    progress(f"  wrote GEO-Bench datasets {CLASSIFICATION} and {SEGMENTATION} "
             f"({tiles} samples each) in {target.uri}")


def _write(folder: Path, tiles: int, size: int, seed: int) -> None:
    s2 = SENTINEL2_13
    landcover = SegmentationClasses("label", 10, n_classes=len(DW_CLASSES) + 1,
                                    class_names=["no data", *DW_CLASSES])
    folders = {CLASSIFICATION: folder / CLASSIFICATION, SEGMENTATION: folder / SEGMENTATION}
    for f in folders.values():
        f.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES.values()}
    values: dict[str, list[np.ndarray]] = {b.name: [] for b in s2}
    for first, chunk in world_chunks(tiles, size, seed):
        for i, split in enumerate(chunk.splits):
            name = f"synth{seed}-{first + i:07d}"
            bands = {b: chunk.arrays["sentinel2"][i, S2_BANDS.index(ours)]
                     for b, ours in zip(s2, GEOBENCH_ORDER, strict=True)}
            write_sample(folders[CLASSIFICATION], name, bands, int(chunk.landscape[i]))
            label = chunk.arrays["dynamic_world"][i, 0].astype(np.int16)
            write_sample(folders[SEGMENTATION], name, bands, (landcover, label))
            splits[SPLIT_NAMES[str(split)]].append(name)
            for b, array in bands.items():
                values[b.name].append(array[::STATS_STRIDE, ::STATS_STRIDE])
    stats = {name: band_stats(np.concatenate([v.ravel() for v in parts]))
             for name, parts in values.items()}
    labels = {CLASSIFICATION: Classification(len(LANDSCAPE_CLASSES), list(LANDSCAPE_CLASSES)),
              SEGMENTATION: landcover}
    for name, f in folders.items():
        write_task_specs(f, TaskSpecifications(name, s2, 10.0, (size, size), labels[name]))
        write_band_stats(f, stats)
        _write_partitions(f, splits, seed)


def _write_partitions(folder: Path, splits: dict[str, list[str]], seed: int) -> None:
    """``default`` (a link to ``original``, as geobench saves it) and the label-efficiency
    partitions: a seeded shuffle of train, its first fraction (at least one sample)."""
    write_partition(folder, "original", splits)
    link = folder / "default_partition.json"
    if not link.exists():
        os.symlink("original_partition.json", link)
    order = np.random.default_rng(seed).permutation(len(splits["train"]))
    for fraction in FRACTIONS:
        keep = max(1, round(fraction * len(order)))
        train = [splits["train"][i] for i in sorted(order[:keep])]
        write_partition(folder, f"{fraction:.2f}x_train", {**splits, "train": train})
