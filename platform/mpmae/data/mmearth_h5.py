"""The official MMEarth release layout: one gzip HDF5 file plus three JSON files.

A release folder holds ``data_<name>.h5`` and, next to it, ``<name>_band_stats.json``,
``<name>_tile_info.json`` and ``<name>_splits.json``. This module finds those files (local
or ``s3://``), checks the HDF5 layout, reads rows into the arrays of the modality catalogue
(one-hot biome/ecoregion become class indices), maps ``tile_info.json`` ``BANDS`` onto the
band-presence vector, and writes tiny releases in exactly that layout for tests and
benchmarks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mpmae.data.band_stats import BandStats
from mpmae.data.manifest import DatasetError
from mpmae.data.schema import presence_bands
from mpmae.data.tiles import presence_from_data
from mpmae.modalities import MODALITIES, S2_BANDS, S2_LEVELS, TaskKind
from mpmae.storage import Location, StorageOptions, fsspec_filesystem, resolve


class ReleaseError(DatasetError):
    """The MMEarth release (HDF5 or one of its JSON files) is missing, incomplete or corrupt."""


@dataclass(frozen=True)
class H5Field:
    """One HDF5 dataset of the release: (N, width, H, W) if ``pixel`` else (N, width)."""

    dtype: str
    width: int
    pixel: bool
    fill: float = 0  # what the writer stores for a dataset the caller leaves out


_NAN = float("nan")
LAYOUT: dict[str, H5Field] = {
    "sentinel2": H5Field("uint16", len(S2_BANDS), True),
    "sentinel2_cloudmask": H5Field("uint16", 1, True, fill=65535),
    "sentinel2_cloudprod": H5Field("uint16", 1, True, fill=65535),
    "sentinel2_scl": H5Field("uint8", 1, True, fill=255),
    "sentinel1": H5Field("float32", 8, True, fill=_NAN),
    "aster": H5Field("int16", 2, True),
    "era5": H5Field("float32", 12, False, fill=_NAN),
    "dynamic_world": H5Field("uint8", 1, True),
    "canopy_height_eth": H5Field("int8", 2, True),
    "esa_worldcover": H5Field("uint8", 1, True),
    "lat": H5Field("float32", 2, False, fill=_NAN),
    "lon": H5Field("float32", 2, False, fill=_NAN),
    "month": H5Field("float32", 2, False, fill=_NAN),
    "biome": H5Field("uint8", 14, False),
    "eco_region": H5Field("uint16", 846, False),
}
METADATA = "metadata"
METADATA_DTYPE = np.dtype([("tile_id", "S100"), ("S2_type", "S10")])
ONE_HOT = ("biome", "eco_region")
# Catalogue order, so arrays read here line up with the tile schema.
CONVERTED = tuple(n for n in MODALITIES if n in LAYOUT)
NOT_CONVERTED = tuple(n for n in LAYOUT if n not in MODALITIES)
JSON_SUFFIXES = {
    "band_stats": "_band_stats.json",
    "tile_info": "_tile_info.json",
    "splits": "_splits.json",
}


@dataclass(frozen=True)
class Release:
    """URIs of a release's four files; small and picklable, so Ray tasks can take it."""

    h5: str
    band_stats: str
    tile_info: str
    splits: str
    storage: StorageOptions = field(default_factory=StorageOptions, repr=False)

    @property
    def file_names(self) -> dict[str, str]:
        return {k: _base_name(getattr(self, k)) for k in ("h5", *JSON_SUFFIXES)}

    def read_json(self, which: str) -> Any:
        """The parsed ``band_stats``, ``tile_info`` or ``splits`` file."""
        uri = getattr(self, which)
        try:
            return json.loads(resolve(uri, self.storage).read_bytes())
        except FileNotFoundError:
            raise ReleaseError(
                f"{uri} is missing: download the release's {which}.json next to its .h5"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ReleaseError(
                f"{uri} is not valid JSON ({e}): the download is incomplete; fetch it again"
            ) from None

    @contextmanager
    def open_h5(self) -> Iterator[h5py.File]:
        """The HDF5 file, opened read-only (through s3fs for ``s3://``)."""
        loc = resolve(self.h5, self.storage)
        with ExitStack() as stack:
            try:
                if loc.is_s3:
                    source = stack.enter_context(fsspec_filesystem(loc).open(loc.path, "rb"))
                else:
                    source = loc.path
                h5 = stack.enter_context(h5py.File(source, "r"))
            except (OSError, ValueError) as e:
                raise ReleaseError(
                    f"cannot open {self.h5} as HDF5 ({e}): the file is truncated or corrupt; "
                    "compare its size with the published one and download it again"
                ) from None
            yield h5


def find_release(src: str | os.PathLike, storage: StorageOptions | None = None) -> Release:
    """The release at ``src``: its folder or its ``.h5`` file; the JSON files sit next to it."""
    loc = resolve(src, storage)
    if loc.is_file():
        h5, folder = loc, _parent(loc)
    elif loc.exists():
        folder = loc
        h5 = folder.join(_pick(folder, _names(folder), ".h5", preferred=None))
    else:
        raise ReleaseError(f"{loc.uri} does not exist: point SRC at the MMEarth release folder")
    names = _names(folder)
    stem = _base_name(h5.uri).removesuffix(".h5")
    found = {
        key: folder.join(_pick(folder, names, suffix, preferred=stem + suffix)).uri
        for key, suffix in JSON_SUFFIXES.items()
    }
    return Release(h5=h5.uri, storage=loc.options, **found)


def _names(folder: Location) -> list[str]:
    return [n for n in folder.list_files() if "/" not in n]


def _pick(folder: Location, names: list[str], suffix: str, preferred: str | None) -> str:
    """The one file ending in ``suffix`` (``preferred`` wins when several do)."""
    matches = [n for n in names if n.endswith(suffix)]
    if preferred in matches:
        return preferred
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ReleaseError(
            f"no *{suffix} in {folder.uri}: an MMEarth release needs data_*.h5 and its "
            "_band_stats.json, _tile_info.json and _splits.json side by side"
        )
    raise ReleaseError(
        f"several *{suffix} files in {folder.uri} ({matches}): pass the .h5 file itself as SRC"
    )


def _parent(loc: Location) -> Location:
    parent = loc.uri.rsplit("/", 1)[0] if loc.is_s3 else os.path.dirname(loc.path)
    return resolve(parent, loc.options)


def _base_name(uri: str) -> str:
    return uri.replace(os.sep, "/").rsplit("/", 1)[-1]


def check_layout(h5: h5py.File, where: str) -> tuple[int, int]:
    """``(num_tiles, tile_size)`` after checking every dataset the converter reads."""
    missing = [n for n in (*CONVERTED, METADATA) if n not in h5]
    if missing:
        raise ReleaseError(
            f"{where} has no dataset(s) {missing}: not a complete MMEarth release; "
            "download the .h5 again"
        )
    meta = h5[METADATA]
    if meta.dtype.names is None or not {"tile_id", "S2_type"} <= set(meta.dtype.names):
        raise ReleaseError(f"dataset '{METADATA}' in {where} lacks the tile_id/S2_type fields")
    num_tiles, size = meta.shape[0], h5["sentinel2"].shape[-1]
    for name in CONVERTED:
        _check_dataset(h5[name], name, where, num_tiles, size)
    return num_tiles, size


def _check_dataset(ds: h5py.Dataset, name: str, where: str, num_tiles: int, size: int) -> None:
    spec = LAYOUT[name]
    expected = (num_tiles, spec.width, size, size) if spec.pixel else (num_tiles, spec.width)
    if ds.shape != expected:
        raise ReleaseError(
            f"dataset '{name}' in {where} has shape {ds.shape}, expected {expected} (the "
            "MMEarth layout, N from 'metadata'): the file is not an MMEarth release or is damaged"
        )
    ok = ds.dtype.kind in "uib" if name in ONE_HOT else ds.dtype == np.dtype(spec.dtype)
    if not ok:
        raise ReleaseError(
            f"dataset '{name}' in {where} is {ds.dtype}, expected {spec.dtype}: "
            "not the MMEarth layout"
        )


def read_rows(h5: h5py.File, name: str, rows: np.ndarray, where: str) -> np.ndarray:
    """``h5[name][rows]`` for sorted unique ``rows``, reading each run of neighbours at once."""
    ds = h5[name]
    out = np.empty((len(rows), *ds.shape[1:]), ds.dtype)
    for first, stop, at in _runs(rows):
        try:
            ds.read_direct(out, np.s_[first:stop], np.s_[at : at + stop - first])
        except (OSError, RuntimeError) as e:
            raise ReleaseError(
                f"cannot read rows {first}..{stop - 1} of dataset '{name}' in {where} ({e}): "
                "the file is corrupt; download it again"
            ) from None
    return out


def _runs(rows: np.ndarray) -> list[tuple[int, int, int]]:
    """(first row, stop row, position in ``rows``) of each run of consecutive rows."""
    if len(rows) == 0:
        return []
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(rows)]])
    return [(int(rows[s]), int(rows[e - 1]) + 1, int(s)) for s, e in zip(starts, ends, strict=True)]


def read_metadata(h5: h5py.File, rows: np.ndarray, where: str) -> tuple[list[str], list[str]]:
    """Tile ids and lower-case S2 levels (``l1c``/``l2a``) of sorted unique ``rows``."""
    meta = read_rows(h5, METADATA, rows, where)
    tile_ids = [t.decode().strip() for t in meta["tile_id"]]
    s2_types = [t.decode().strip().lower() for t in meta["S2_type"]]
    bad = sorted({t for t in s2_types if t not in S2_LEVELS})
    if bad:
        raise ReleaseError(
            f"'{METADATA}' in {where} has S2_type values {bad}; expected one of {S2_LEVELS}"
        )
    return tile_ids, s2_types


def read_tiles(h5: h5py.File, rows: np.ndarray, where: str) -> dict[str, np.ndarray]:
    """Catalogue arrays (native dtypes) of sorted unique ``rows``; one-hots become indices."""
    arrays = {}
    for name in CONVERTED:
        values = read_rows(h5, name, rows, where)
        arrays[name] = one_hot_to_index(name, values) if name in ONE_HOT else values
    return arrays


def one_hot_to_index(name: str, one_hot: np.ndarray) -> np.ndarray:
    """Class index per tile; an all-zero row (no class) becomes the modality's no-data."""
    m = MODALITIES[name]
    index = one_hot.argmax(axis=1).astype(m.dtype)
    index[one_hot.max(axis=1) == 0] = m.nodata
    return index


def tile_presence(
    arrays: dict[str, np.ndarray], tile_bands: Sequence[Mapping[str, Any] | None]
) -> np.ndarray:
    """(N, bands) uint8 presence: ``tile_info.json`` BANDS where it says, else the data.

    ``tile_bands[i]`` is tile i's BANDS entry or None. BANDS maps a source to the list of
    band names it really has (None: source absent); Sentinel-1 comes as ``sentinel1_asc`` /
    ``sentinel1_desc`` with bare polarisations. A modality BANDS does not mention, or whose
    listed names we cannot recognise (e.g. exporter names like ``b1``), keeps the presence
    read from the data.
    """
    presence = presence_from_data(arrays)
    column = {b: i for i, b in enumerate(presence_bands([n for n in MODALITIES if n in arrays]))}
    for row, bands in enumerate(tile_bands):
        for name, present in _listed_bands(bands or {}).items():
            if name not in arrays:
                continue
            for band in MODALITIES[name].bands:
                presence[row, column[f"{name}/{band}"]] = band in present
    return presence


def _listed_bands(bands: Mapping[str, Any]) -> dict[str, set[str]]:
    """Our band names listed per modality, for the modalities whose listing we can read."""
    listed: dict[str, set[str]] = {}
    for source, names in bands.items():
        target = _source_modality(source)
        if target is not None:
            name, prefix = target
            listed.setdefault(name, set()).update(f"{prefix}{n}".lower() for n in names or ())
    readable = {}
    for name, names in listed.items():
        ours = {b.lower(): b for b in MODALITIES[name].bands}
        known = {ours[n] for n in names if n in ours}
        if known or not names:
            readable[name] = known
    return readable


def _source_modality(source: str) -> tuple[str, str] | None:
    """(modality, band-name prefix) of a BANDS key: ``sentinel1_asc`` → (sentinel1, asc_)."""
    for name, m in MODALITIES.items():
        if m.kind is TaskKind.IMAGE_CLASS:
            continue
        if source == name:
            return name, ""
        if source.startswith(name + "_") and source not in LAYOUT:
            return name, source[len(name) + 1 :] + "_"
    return None


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
