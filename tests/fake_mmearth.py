"""Tiny MMEarth releases in the official layout (HDF5 + three JSON files), for tests and
for ``benchmarks/bench_data.py``: what the converter must read, written from arrays."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mpmae.data.format.band_stats import BandStats
from mpmae.data.sources.mmearth_h5 import CONVERTED, JSON_SUFFIXES, LAYOUT, METADATA, METADATA_DTYPE
from mpmae.modalities import S2_BANDS, S2_LEVELS


def write_mmearth_release(
    folder: str | os.PathLike,
    arrays: Mapping[str, np.ndarray],
    tile_ids: Sequence[str],
    s2_types: Sequence[str],
    splits: Mapping[str, Sequence[int]],
    *,
    tile_info_bands: Mapping[str, Mapping[str, Any]] | None = None,
    band_stats: Mapping[str, Mapping[str, list[float]]] | None = None,
    name: str = "data_tiny",
) -> Path:
    """Write a release in the official layout into ``folder``; returns the ``.h5`` path.

    ``arrays`` maps HDF5 dataset names (see ``LAYOUT``) to (N, …) arrays in the official
    layout: pixel data (N, C, H, W), biome/eco_region one-hot. Datasets left out are filled
    with no-data. ``tile_ids``/``s2_types`` fill ``metadata``; ``splits`` maps split → rows.
    ``tile_info_bands`` (tile_id → BANDS) goes into ``tile_info.json``; ``band_stats`` is
    written as given, or computed over all tiles when None. Every dataset is gzip with one
    chunk per sample, as in the published files.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    h5_path = folder / f"{name}.h5"
    num_tiles, size = len(tile_ids), arrays["sentinel2"].shape[-1]
    with h5py.File(h5_path, "w") as h5:
        for ds_name, spec in LAYOUT.items():
            values = arrays.get(ds_name)
            if values is None:
                per_tile = (spec.width, size, size) if spec.pixel else (spec.width,)
                values = np.full((num_tiles, *per_tile), spec.fill, spec.dtype)
            values = np.asarray(values, spec.dtype)
            h5.create_dataset(ds_name, data=values, chunks=(1, *values.shape[1:]),
                              compression="gzip")
        meta = np.array([(t.encode(), s.encode()) for t, s in zip(tile_ids, s2_types, strict=True)],
                        METADATA_DTYPE)
        h5.create_dataset(METADATA, data=meta, chunks=(1,), compression="gzip")
    stats = band_stats if band_stats is not None else _release_stats(arrays, s2_types)
    docs = {
        "band_stats": stats,
        "tile_info": _tile_info(arrays, tile_ids, s2_types, tile_info_bands or {}),
        "splits": {k: [int(i) for i in v] for k, v in splits.items()},
    }
    for key, doc in docs.items():
        (folder / f"{name}{JSON_SUFFIXES[key]}").write_text(json.dumps(doc))
    return h5_path


def _release_stats(arrays: Mapping[str, np.ndarray], s2_types: Sequence[str]) -> dict:
    stats = BandStats()
    for name in CONVERTED:
        if name in arrays:
            stats.add(name, np.asarray(arrays[name]), np.asarray(s2_types))
    return stats.result()


def _tile_info(arrays, tile_ids, s2_types, tile_info_bands) -> dict:
    """The part of tile_info.json a converter reads: level, centre and BANDS."""
    def degrees(name: str) -> np.ndarray:
        sin_cos = np.asarray(arrays.get(name, np.zeros((len(tile_ids), 2))), np.float64)
        return np.degrees(np.arctan2(sin_cos[:, 0], sin_cos[:, 1]))

    lat, lon = degrees("lat"), degrees("lon")
    info = {}
    for i, (tile_id, s2_type) in enumerate(zip(tile_ids, s2_types, strict=True)):
        entry: dict[str, Any] = {"S2_type": s2_type, "lat": float(lat[i]), "lon": float(lon[i])}
        if tile_id in tile_info_bands:
            entry["BANDS"] = tile_info_bands[tile_id]
        info[tile_id] = entry
    return info


def example_arrays(
    num_tiles: int, tile_size: int, seed: int = 0
) -> tuple[dict[str, np.ndarray], list[str], list[str]]:
    """Plausible random (arrays, tile_ids, s2_types) in the release layout.

    Alternates L1C/L2A (L2A B10 is zeros, as published); Sentinel-1 HH/HV are NaN and every
    third tile has no descending orbit (-inf); every fourth tile has no Dynamic World
    (zeros); tile 1 has an all-zero biome and ecoregion one-hot.
    """
    rng = np.random.default_rng(seed)
    n, px = num_tiles, (tile_size, tile_size)
    s2_types = [S2_LEVELS[i % 2] for i in range(n)]
    s2 = rng.integers(1, 10_000, (n, 13, *px), dtype=np.uint16)
    s2[1::2, S2_BANDS.index("B10")] = 0
    s1 = rng.normal(-15, 5, (n, 8, *px)).astype(np.float32)
    s1[:, [2, 3, 6, 7]] = np.nan
    s1[::3, 4:] = -np.inf
    dw = rng.integers(0, 10, (n, 1, *px), dtype=np.uint8)
    dw[::4] = 0
    angles = rng.uniform(-np.pi, np.pi, (3, n))
    arrays = {
        "sentinel2": s2,
        "sentinel1": s1,
        "aster": rng.integers(-50, 3000, (n, 2, *px), dtype=np.int16),
        "era5": rng.normal(280, 10, (n, 12)).astype(np.float32),
        "dynamic_world": dw,
        "canopy_height_eth": rng.integers(0, 40, (n, 2, *px), dtype=np.int8),
        "esa_worldcover": rng.choice(np.array([0, 10, 20, 30, 40, 50, 60, 80, 95, 100],
                                              np.uint8), (n, 1, *px)),
        "lat": np.stack([np.sin(angles[0] / 2), np.cos(angles[0] / 2)], 1).astype(np.float32),
        "lon": np.stack([np.sin(angles[1]), np.cos(angles[1])], 1).astype(np.float32),
        "month": np.stack([np.sin(angles[2]), np.cos(angles[2])], 1).astype(np.float32),
        "biome": _one_hot(rng.integers(0, 14, n), 14, np.uint8),
        "eco_region": _one_hot(rng.integers(0, 846, n), 846, np.uint16),
    }
    if n > 1:
        arrays["biome"][1] = 0
        arrays["eco_region"][1] = 0
    return arrays, [f"tile_{seed}_{i:05d}" for i in range(n)], s2_types


def _one_hot(index: np.ndarray, classes: int, dtype) -> np.ndarray:
    out = np.zeros((len(index), classes), dtype)
    out[np.arange(len(index)), index] = 1
    return out
