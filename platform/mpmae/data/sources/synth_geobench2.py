"""The synthetic world's tiles as seven tiny GEO-Bench-2 datasets, written as the benchmark
ships them (tortilla files of GeoTIFF or HDF5 samples, ``tortilla:data_split``), under its real
names, files, items and bands (``catalog.py``), so that ``mpmae evaluate`` runs on
GEO-Bench-2 with no download:

- ``so2sat`` (classification): items s1 (VV, VH) and s2 (10 bands, no B01/B09: MMEarth's
  fills apply); the label, in its ``labels`` column, is the tile's landscape class (its
  index into So2Sat's classes: 9 of the 17 are used);
- ``benv2`` (multi-label): items s1 and s2 (12 bands); its ``labels`` are the BigEarthNet
  class names whose index is a land-cover class (Dynamic-World-like) covering at least
  ``MIN_COVER`` of the tile;
- ``cloudsen12`` (segmentation): item 0 the 12-band image, item 1 the mask: the tile's
  land-cover class (0 = no data … 9) modulo CloudSEN12's four classes;
- ``dynamic_earthnet`` (segmentation, dated): ``PLANET_DATES`` PlanetScope-like items
  (the tile's B04, B03, B02, B08, brightened a little each date), then its one ``s2`` image
  (12 bands, with B10) and the mask (land cover modulo its seven classes), over its three
  part files;
- ``biomassters`` (pixel regression, dated): 12 S1 months (VV, VH twice), 2 or 3 S2 months
  (10 bands, footer column ``modality``), then the AGB map: ``AGB_PER_CLASS`` Mg/ha per
  land-cover class index;
- ``fotw`` (segmentation, two dates): items ``win_a`` and ``win_b`` (the tile's B04, B03,
  B02, B08 as its red, green, blue, nir; window B brightened a little), ``instance_mask``,
  then ``semantic_3class_mask`` (land cover modulo its three classes);
- ``pastis`` (segmentation, dated, HDF5): items ``s2`` (the tile's 10 bands, 2 or 3 dates,
  (T, C, H, W) int16 in dataset ``data``), ``s1a``, ``s1d``, ``semantic`` ((3, H, W), band
  0 land cover modulo its 20 classes) and ``instance``, over its three part files.

The labels are synthetic stand-ins under real class lists; the numbers mean nothing for
the real datasets. Same tiles, splits and seed as ``mpmae data synth``'s world.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from mpmae.data.geobench2.catalog import HDF5, dataset_info
from mpmae.data.geobench2.writer import Entry, geotiff_bytes, hdf5_bytes, write_tortilla
from mpmae.data.sources.synth_world import world_chunks
from mpmae.modalities import S2_BANDS

DATASETS = ("so2sat", "benv2", "cloudsen12", "dynamic_earthnet", "biomassters", "fotw",
            "pastis")
PLANET_DATES = 3
S1_MONTHS = 12
S2_MONTHS = (3, 2)  # BioMassters' S2 months per sample vary; alternate between these
AGB_PER_CLASS = 25.0  # Mg/ha per land-cover class index: a target the tile's image tells
_PLANET = ("B4", "B3", "B2", "B8")  # our S2 bands standing in for PlanetScope's r, g, b, nir
SPLITS = {"train": "train", "val": "validation", "test": "test"}
MIN_COVER = 0.1  # share of a tile a land-cover class needs to be one of benv2's labels


def write_geobench2_sets(dest: str | Path, tiles: int = 120, size: int = 32, seed: int = 0,
                         progress: Callable[[str], None] = print) -> Path:
    """Write the datasets, one folder each, under ``dest``; returns ``dest``."""
    root = Path(dest)
    entries: dict[str, list[Entry]] = {name: [] for name in DATASETS}
    for first, chunk in world_chunks(tiles, size, seed):
        for i, split in enumerate(chunk.splits):
            where = {"tortilla:data_split": SPLITS[str(split)]}
            s2 = chunk.arrays["sentinel2"][i]
            s1 = np.nan_to_num(chunk.arrays["sentinel1"][i, :2]).astype(np.float32)
            dw = chunk.arrays["dynamic_world"][i, 0]
            name = f"synth{seed}-{first + i:07d}"
            entries["so2sat"].append(_sample(name, where, [("s1", s1), ("s2", _s2(s2, "so2sat"))],
                                             int(chunk.landscape[i])))
            entries["benv2"].append(_sample(name, where, [("s1", s1), ("s2", _s2(s2, "benv2"))],
                                            _benv2_labels(dw)))
            mask = (dw % len(dataset_info("cloudsen12").classes)).astype(np.uint8)[None]
            entries["cloudsen12"].append(_sample(
                name, where, [("s2", _s2(s2, "cloudsen12")), ("mask", mask)], None))
            entries["dynamic_earthnet"].append(_sample(name, where, _dynamic_earthnet(s2, dw),
                                                       None))
            entries["biomassters"].append(_biomassters(name, where, s2, s1, dw, first + i))
            entries["fotw"].append(_sample(name, where, _fotw(s2, dw), None))
            entries["pastis"].append(_pastis(name, where, s2, s1, dw, first + i))
    for name, found in entries.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        files = dataset_info(name).files
        for file, part in zip(files, np.array_split(np.arange(len(found)), len(files)),
                              strict=True):
            write_tortilla(folder / file, [found[i] for i in part])
    progress(f"wrote GEO-Bench-2 datasets {', '.join(DATASETS)} ({tiles} samples each, "
             f"{size}x{size}) in {root}")
    return root


def _s2(image: np.ndarray, dataset: str) -> np.ndarray:
    """The dataset's Sentinel-2 bands, in its file order, from our 13 (``S2_BANDS``)."""
    [modality] = [m for m in dataset_info(dataset).modalities if m.key == "s2"]
    return np.stack([image[S2_BANDS.index("B" + b[1:].lstrip("0"))] for b in modality.bands])


def _dynamic_earthnet(s2: np.ndarray, dw: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Its items as its loader reads them: dated PlanetScope images, ``s2``, the mask last."""
    planet = np.stack([s2[S2_BANDS.index(b)] for b in _PLANET]).astype(np.float32)
    dates = [(f"planet_{t}", planet * np.float32(1 + 0.05 * t)) for t in range(PLANET_DATES)]
    mask = (dw % len(dataset_info("dynamic_earthnet").classes)).astype(np.uint8)[None]
    return [*dates, ("s2", _s2(s2, "dynamic_earthnet")), ("mask", mask)]


def _fotw(s2: np.ndarray, dw: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Its items as its loader reads them: windows A and B, the instance mask, the
    3-class semantic mask."""
    window = np.stack([s2[S2_BANDS.index(b)] for b in _PLANET]).astype(np.float32)
    mask = (dw % len(dataset_info("fotw").classes)).astype(np.uint8)[None]
    return [("win_a", window), ("win_b", window * np.float32(1.05)),
            ("instance_mask", dw.astype(np.uint16)[None]), ("semantic_3class_mask", mask)]


def _pastis(name: str, where: dict[str, str], s2: np.ndarray, s1: np.ndarray,
            dw: np.ndarray, index: int) -> Entry:
    """Its HDF5 items as its generator writes them: s2, s1a, s1d series (T, C, H, W), the
    semantic mask (3, H, W) and the instance map."""
    image = _s2(s2, "pastis").astype(np.float32)
    dates = S2_MONTHS[index % len(S2_MONTHS)]
    series = np.stack([image * np.float32(1 + 0.05 * t) for t in range(dates)])
    s1_3 = np.stack([np.concatenate([s1, s1[:1] / np.float32(2)])] * 2).astype(np.float16)
    semantic = np.stack([dw % len(dataset_info("pastis").classes), dw, dw]).astype(np.uint8)
    arrays = [("s2", np.round(series).astype(np.int16)), ("s1a", s1_3), ("s1d", s1_3),
              ("semantic", semantic), ("instance", dw.astype(np.int64))]
    items = [Entry(key, hdf5_bytes(array), HDF5, metadata=where) for key, array in arrays]
    return Entry(name, items, metadata=where)


def _biomassters(name: str, where: dict[str, str], s2: np.ndarray, s1: np.ndarray,
                 dw: np.ndarray, index: int) -> Entry:
    """Its items as its loader selects them (footer column ``modality``): 12 S1 months,
    2 or 3 S2 months (the tile, brightened a little each month), the AGB map last."""
    image = _s2(s2, "biomassters").astype(np.float32)
    s1_4 = np.concatenate([s1, s1]).astype(np.float32)  # VV/VH ascending and descending
    months = [(f"S1_{t:02d}", "S1", s1_4) for t in range(S1_MONTHS)]
    months += [(f"S2_{t:02d}", "S2", image * np.float32(1 + 0.05 * t))
               for t in range(S2_MONTHS[index % len(S2_MONTHS)])]
    agb = (dw.astype(np.float32) * np.float32(AGB_PER_CLASS))[None]
    items = [Entry(key, geotiff_bytes(array), metadata={**where, "modality": modality})
             for key, modality, array in [*months, ("AGB", "AGB", agb)]]
    return Entry(name, items, metadata=where)


def _benv2_labels(dw: np.ndarray) -> list[str]:
    classes = dataset_info("benv2").classes
    cover = np.bincount(dw.ravel(), minlength=10)[1:] / dw.size  # class 0: no data
    found = [classes[k] for k in np.flatnonzero(cover >= MIN_COVER)]
    return found or [classes[int(np.argmax(cover))]]


def _sample(name: str, where: dict[str, str], images: list[tuple[str, np.ndarray]],
            label: int | list[str] | None) -> Entry:
    items = [Entry(key, geotiff_bytes(array), metadata=where) for key, array in images]
    labels = {} if label is None else {"labels": label}
    return Entry(name, items, metadata={**where, **labels})
