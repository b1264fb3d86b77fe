"""A GEO-Bench-2 dataset folder: its tortilla files, samples by split, and samples read as
named bands and a label, in the shape data/geobench gives GEO-Bench v1 to the evaluation.

    <folder>/geobench_benv2.tortilla                one file, or
    <folder>/geobench_pastis.0000.part.tortilla     … several parts, as the benchmark ships them

Inputs are read at their native size (the benchmark's ``input_size`` is recorded in the
catalog; resizing to it is the caller's choice). Bands are matched to an encoder's by name
with data/geobench's matching: only bands of the Sentinel-2 modality count, and MMEarth's
fills (B1 ← B2, B9 ← B8A) are listed in the match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mpmae.data.geobench.bands import BandMatch, match_bands
from mpmae.data.geobench.normalise import BandStats, InputStats, input_stats
from mpmae.data.geobench.task_specs import BandSpec
from mpmae.data.geobench2.catalog import (
    GEOTIFF,
    HDF5,
    SENTINEL2,
    SUPPORTED_TASKS,
    DatasetInfo,
    Modality,
    Task,
    dataset_info,
    s2_readable,
)
from mpmae.data.geobench2.errors import GeoBench2Error
from mpmae.data.geobench2.geotiff import read_geotiff
from mpmae.data.geobench2.hdf5 import read_hdf5
from mpmae.data.geobench2.stats import read_band_stats
from mpmae.data.geobench2.tortilla import Item, read_bytes, read_children, read_items

# The benchmark's split names (its loaders accept "val" for "validation").
SPLITS = ("train", "validation", "test")
SERIES_COLUMN = "modality"  # the footer column naming a dated item's modality ("S2")

Label = int | np.ndarray


class Sample(NamedTuple):
    """``bands``: band name → (H, W) array, (T, H, W) for a dated series; ``label``: class
    index, 0/1 vector, (H, W) classes or (H, W) float target."""

    bands: dict[str, np.ndarray]
    label: Label


@dataclass(frozen=True)
class GeoBench2Dataset:
    folder: Path
    info: DatasetInfo
    samples_by_split: dict[str, tuple[Item, ...]]

    @classmethod
    def open(cls, folder: str | Path, name: str | None = None) -> GeoBench2Dataset:
        """Read the footers of dataset ``name``'s tortilla files in ``folder`` (the folder's
        own name where ``name`` is not given)."""
        path = Path(folder)
        try:
            info = dataset_info(name or path.name)
        except KeyError as exc:
            raise GeoBench2Error(f"{path}: {exc.args[0]}; name the dataset") from None
        missing = [f for f in info.files if not (path / f).is_file()]
        if missing:
            raise GeoBench2Error(f"{path}: {info.name}'s files {missing} are not here; "
                                 "download them from the benchmark's Hugging Face page")
        items = [i for f in info.files for i in read_items(path / f)]
        if len(info.files) > 1:
            # tacoreader 0.5.6 orders the rows of several parts by tortilla:id; so do we,
            # so that a sample's index means the same sample in both.
            items.sort(key=lambda i: i.id)
        return cls(path, info, _by_split(path, info, items))

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def task(self) -> Task:
        return self.info.task

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.info.classes

    @property
    def bands(self) -> tuple[BandSpec, ...]:
        """Every input band, named as the benchmark names it, with its sensor."""
        return tuple(BandSpec(b, (), m.sensor, None, None)
                     for m in self.info.modalities for b in m.bands)

    def samples(self, split: str) -> tuple[Item, ...]:
        """The samples of ``split`` (``"train"``, ``"validation"``, ``"test"``)."""
        if split not in SPLITS:
            raise GeoBench2Error(f"split {split!r} is not one of {list(SPLITS)}")
        found = self.samples_by_split.get(split, ())
        if not found:
            raise GeoBench2Error(f"{self.folder}: {', '.join(self.info.files)} hold no "
                                 f"{split} samples (tortilla:data_split); download the "
                                 "dataset again")
        return found

    def read_sample(self, sample: Item) -> Sample:
        """One sample's bands (every modality the table places) and its label."""
        self._check_readable()
        items = read_children(sample)
        where = f"{sample.path} sample {sample.id!r}"
        bands: dict[str, np.ndarray] = {}
        label = self._label(sample, items, where)
        for modality in self.info.modalities:
            if self.info.item_format == HDF5:
                if modality.sensor != SENTINEL2 or modality.item is None:
                    continue  # PASTIS' S1 series: our encoders take Sentinel-2 only
                image = self._hdf5_series(items, modality, where, label)
            elif modality.placed:
                image = self._image(items, modality, where, label)
            elif modality.dated and modality.sensor == SENTINEL2:
                # (C, T, H, W): our encoders take Sentinel-2 only, so other series
                # (BioMassters' S1 months) are not read.
                image = self._series(items, modality, where, label)
            else:
                continue
            bands.update(zip(modality.bands, image, strict=True))
        return Sample(bands, label)

    def match_bands(self, input_bands: Sequence[str]) -> BandMatch:
        """Where each of an encoder's ``input_bands`` comes from here (filled ones listed)."""
        return match_bands(self.name, self.bands, input_bands)

    def input_stats(self, match: BandMatch, stats_path: Path) -> InputStats:
        """Mean and std per input band of ``match`` from one of the benchmark's statistics
        files (see ``stats.stats_file``)."""
        stats: dict[str, BandStats] = read_band_stats(stats_path, self.info)
        return input_stats(match, stats)

    def _check_readable(self) -> None:
        if self.task not in SUPPORTED_TASKS:
            raise GeoBench2Error(f"{self.name}: {self.task.value} is not supported yet")
        if not s2_readable(self.info) and any(not m.placed for m in self.info.modalities):
            raise GeoBench2Error(f"{self.name}: reading its samples (dated series) is not "
                                 "supported yet")

    def _image(self, items: list[Item], modality: Modality, where: str, label: Label
               ) -> np.ndarray:
        n_bands = len(modality.bands)
        if modality.item is not None:
            return self._geotiff(items, modality.item, where, n_bands)
        found = [i for i, item in enumerate(items) if item.id == modality.item_id]
        if found:
            return self._geotiff(items, found[0], where, n_bands)
        # As the benchmark's loader does: zeros at the mask's size.
        return np.zeros((n_bands, *np.shape(label)[-2:]), dtype=np.float32)

    def _series(self, items: list[Item], modality: Modality, where: str, label: Label
                ) -> np.ndarray:
        """The dated images of ``modality`` in footer order, as (C, T, H, W); a sample with
        none reads as one date of zeros at the label's size (the benchmark's loader pads
        missing dates with zeros)."""
        n_bands = len(modality.bands)
        positions = modality.positions or [i for i, item in enumerate(items)
                                           if item.metadata.get(SERIES_COLUMN) == modality.series]
        dates = [self._geotiff(items, i, where, n_bands) for i in positions]
        if not dates:
            dates = [np.zeros((n_bands, *np.shape(label)[-2:]), dtype=np.float32)]
        shapes = {d.shape for d in dates}
        if len(shapes) > 1:
            raise GeoBench2Error(f"{where}: its {modality.series} dates differ in size "
                                 f"{sorted(shapes)}; download the dataset again")
        return np.stack(dates, axis=1)

    def _hdf5_series(self, items: list[Item], modality: Modality, where: str, label: Label
                     ) -> np.ndarray:
        """PASTIS' series item, (T, C, H, W) on disk, as (C, T, H, W) at the mask's size."""
        item = self._item(items, modality.item or 0, where, HDF5)
        series = read_hdf5(read_bytes(item), f"{where} item {item.id!r}", ndim=4)
        expected = (len(modality.bands), *np.shape(label)[-2:])
        if series.shape[0] < 1 or series.shape[1:] != expected:
            raise GeoBench2Error(f"{where} item {item.id!r}: a series of shape {series.shape} "
                                 f"where {self.name} has (T, {expected[0]}, H, W) at its "
                                 f"mask's size {expected[1:]}; download the dataset again")
        return series.transpose(1, 0, 2, 3)

    def _geotiff(self, items: list[Item], position: int, where: str, n_bands: int
                 ) -> np.ndarray:
        item = self._item(items, position, where, GEOTIFF)
        return read_geotiff(read_bytes(item), f"{where} item {item.id!r}", n_bands)

    def _item(self, items: list[Item], position: int, where: str, file_format: str) -> Item:
        if not -len(items) <= position < len(items):
            raise GeoBench2Error(f"{where}: has {len(items)} items, {self.name} has one at "
                                 f"position {position}; download the dataset again")
        item = items[position]
        if item.file_format != file_format:
            raise GeoBench2Error(f"{where}: item {item.id!r} is {item.file_format}, not "
                                 f"{'a GeoTIFF' if file_format == GEOTIFF else file_format}")
        return item

    def _hdf5_mask(self, items: list[Item], where: str) -> np.ndarray:
        """PASTIS' semantic mask: band 0 of its (3, H, W) item, as its loader reads it."""
        item = self._item(items, self.info.label_item or 0, where, HDF5)
        mask = read_hdf5(read_bytes(item), f"{where} item {item.id!r}", ndim=3)
        if mask.shape[0] < 1:
            raise GeoBench2Error(f"{where} item {item.id!r}: a mask of shape {mask.shape} "
                                 "has no band; download the dataset again")
        return mask[0]

    def _label(self, sample: Item, items: list[Item], where: str) -> Label:
        info = self.info
        if info.task is Task.REGRESSION:
            target = self._geotiff(items, info.label_item, where, 1)[0].astype(np.float32)
            if not np.isfinite(target).all():
                raise GeoBench2Error(f"{where}: its target holds NaN or infinite values")
            return target / np.float32(info.target_std)
        if info.task is Task.SEGMENTATION:
            if info.label_item is None:
                raise GeoBench2Error(f"{self.name}: its masks are not placed yet")
            mask = (self._hdf5_mask(items, where) if info.item_format == HDF5
                    else self._geotiff(items, info.label_item, where, 1)[0])
            return _class_map(where, mask, len(info.classes))
        value = sample.metadata.get(info.label_column or "")
        if info.task is Task.MULTI_LABEL:
            return _multi_hot(where, value, info.classes)
        return _class_index(where, value, info.classes)


def _by_split(path: Path, info: DatasetInfo, items: list[Item]) -> dict[str, tuple[Item, ...]]:
    unknown = sorted({str(i.split) for i in items if i.split not in SPLITS})
    if unknown:
        raise GeoBench2Error(f"{path}: {info.name} has samples in splits {unknown}, not "
                             f"{list(SPLITS)}; is tortilla:data_split missing?")
    bad = [i.id for i in items if not i.is_nested]
    if bad and (info.modalities[0].item is not None or info.modalities[0].positions):
        raise GeoBench2Error(f"{path}: {info.name}'s samples {bad[:3]} are not nested "
                             "tortillas (one per sample); download the dataset again")
    return {s: tuple(i for i in items if i.split == s) for s in SPLITS}


def _class_index(where: str, value: object, classes: tuple[str, ...]) -> int:
    # The benchmark stores a class as its index (So2Sat) or its name.
    if isinstance(value, str) and value in classes:
        return classes.index(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(classes):
        return value
    raise GeoBench2Error(f"{where}: label {value!r} is not one of the {len(classes)} classes")


def _multi_hot(where: str, value: object, classes: tuple[str, ...]) -> np.ndarray:
    names = value if isinstance(value, list) else None
    unknown = [n for n in names or () if n not in classes]
    if names is None or unknown:
        raise GeoBench2Error(f"{where}: labels {value!r} are not a list of the dataset's "
                             f"class names (unknown: {unknown})")
    vector = np.zeros(len(classes), dtype=np.int64)
    vector[[classes.index(n) for n in names]] = 1
    return vector


def _class_map(where: str, band: np.ndarray, n_classes: int) -> np.ndarray:
    classes = band.astype(np.int64)
    if (classes != band).any() or classes.min() < 0 or classes.max() >= n_classes:
        raise GeoBench2Error(f"{where}: mask holds values outside the {n_classes} classes "
                             f"0..{n_classes - 1}")
    return classes
