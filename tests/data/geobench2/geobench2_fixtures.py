"""Tiny GEO-Bench-2 datasets written in code: benv2-shaped (multi-label, S1 + 12-band S2)
and so2sat-shaped (classification, S2 without B1/B9), a few 8x8 samples each."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mpmae.data.geobench2.catalog import dataset_info
from mpmae.data.geobench2.writer import Entry, geotiff_bytes, write_tortilla

SPLITS = ("train", "train", "validation", "test")


def image(seed: int, bands: int, dtype: str = "uint16") -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 3000, (bands, 8, 8)).astype(dtype)


def sample(i: int, split: str, label: object, s2_bands: int) -> Entry:
    """Sample ``i``: items s1 (2 float32 bands) and s2 (``s2_bands`` uint16 bands)."""
    where = {"tortilla:data_split": split}
    s1 = Entry("s1", geotiff_bytes(image(100 + i, 2, "float32")), metadata=where)
    s2 = Entry("s2", geotiff_bytes(image(i, s2_bands)), metadata=where)
    return Entry(f"sample_{i}", [s1, s2],
                 metadata={"tortilla:data_split": split, "labels": label, "lat": 50.0 + i})


def write_benv2(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    classes = dataset_info("benv2").classes
    entries = [sample(i, split, [classes[i], classes[-1]], 12)
               for i, split in enumerate(SPLITS)]
    return write_tortilla(folder / "geobench_benv2.tortilla", entries)


def write_so2sat(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    entries = [sample(i, split, i, 10) for i, split in enumerate(SPLITS)]
    return write_tortilla(folder / "geobench_so2sat.tortilla", entries)
