"""The official MMEarth release layout: one gzip HDF5 file plus three JSON files.

A release folder holds ``data_<name>.h5`` and, next to it, ``<name>_band_stats.json``,
``<name>_tile_info.json`` and ``<name>_splits.json``. This module finds those files (local
or ``s3://``), checks the HDF5 layout, reads rows into the arrays of the modality catalogue
(one-hot biome/ecoregion become class indices), maps ``tile_info.json`` ``BANDS`` onto the
band-presence vector. (Tests and benchmarks write tiny releases in this layout with
``tests/fake_mmearth.py``.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from mpmae.data.format.manifest import DatasetError
from mpmae.data.format.schema import presence_bands
from mpmae.data.format.tiles import presence_from_data
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
            except (OSError, RuntimeError, ValueError) as e:
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
    try:
        return _layout(h5, where)
    except ReleaseError:
        raise
    except (KeyError, OSError, RuntimeError, ValueError) as e:  # h5py on damaged metadata
        raise ReleaseError(f"cannot read the layout of {where} ({e}): the file is corrupt; "
                           "download it again") from None


def _layout(h5: h5py.File, where: str) -> tuple[int, int]:
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


def _dataset(h5: h5py.File, name: str, where: str) -> h5py.Dataset:
    """``h5[name]``; a damaged object header is a ReleaseError naming the file."""
    try:
        return h5[name]
    except (KeyError, OSError, ValueError, RuntimeError) as e:
        raise ReleaseError(
            f"cannot open dataset '{name}' in {where} ({e}): the file is corrupt; "
            "download it again") from None


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
    ds = _dataset(h5, name, where)
    out = np.empty((len(rows), *ds.shape[1:]), ds.dtype)
    for first, stop, at in _runs(rows):
        _check_stored(ds, first, stop, name, where)
        try:
            ds.read_direct(out, np.s_[first:stop], np.s_[at : at + stop - first])
        except (OSError, RuntimeError, ValueError) as e:
            raise ReleaseError(
                f"cannot read rows {first}..{stop - 1} of dataset '{name}' in {where} ({e}): "
                "the file is corrupt; download it again"
            ) from None
    return out


def _check_stored(ds: h5py.Dataset, first: int, stop: int, name: str, where: str) -> None:
    """Every chunk holding rows ``first..stop-1`` is stored. HDF5 reads a chunk missing
    from its index as fill values without a word, and the release writes every row: a
    missing chunk means a damaged index, not a tile of zeros.

    Each chunk is looked up by its coordinate (``read_direct_chunk``: one index lookup,
    then its stored bytes, which the read that follows finds in the cache), not with
    ``get_chunk_info_by_coord``, which walks the whole index for every chunk: with the
    release's one chunk a tile, that made the convert's CPU per tile grow with the size
    of the release (benchmarks/bench_scale.py; 1 ms a lookup at 64k tiles)."""
    if ds.chunks is None:
        return
    step = ds.chunks[0]
    for row in range(first - first % step, stop, step):
        try:
            ds.id.read_direct_chunk((row,) + (0,) * (ds.ndim - 1))
        except (OSError, RuntimeError, ValueError) as e:
            if "not allocated" in str(e):  # h5py's words for a chunk the index lacks
                raise ReleaseError(
                    f"dataset '{name}' in {where} stores no data for row {row} (its chunk "
                    "index is damaged; HDF5 would read fill values): download the file "
                    "again") from None
            raise ReleaseError(f"cannot read the chunk index of dataset '{name}' in {where} "
                               f"({e}): the file is corrupt; download it again") from None


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
