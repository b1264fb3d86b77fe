"""Writes GEO-Bench v1.0 dataset folders in code, laid out exactly as geobench 1.0 writes them.

No geobench, affine or rasterio here either: the classes below stand in for theirs on the
*writer* side. Each pickles under the real ``module.Name`` (``geobench.dataset.Sentinel2``,
``affine.Affine``, …), the way the real class pickles (plain ``__dict__``; Affine's six
coefficients; CRS's WKT string). Pickle needs the named module importable while it dumps,
so throwaway modules are put in ``sys.modules`` for the dump only and removed after: the
reader under test cannot find them.

The layout (geobench/dataset.py ``write_sample_hdf5``, task.py ``TaskSpecifications.save``):

    <folder>/task_specs.pkl           pickle.dump(TaskSpecifications, protocol=4)
    <folder>/band_stats.json          band name → {min, max, mean, std, median, percentile_*}
    <folder>/<name>_partition.json    {"train": [...], "valid": [...], "test": [...]}
    <folder>/<sample>.hdf5            one 2-D dataset per band, named by the band;
                                      attrs["pickle"] = str(pickle.dumps(d))
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import pickle
import sys
import types
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

# --- writer-side classes (attributes as geobench 1.0 sets them) --------------------------


class BandInfo:
    def __init__(self, name: str, alt_names: Sequence[str] = (),
                 spatial_resolution: float | None = None) -> None:
        self.name = name
        self.alt_names = tuple(alt_names)
        self.spatial_resolution = spatial_resolution


class SpectralBand(BandInfo):
    def __init__(self, name: str, alt_names: Sequence[str] = (),
                 spatial_resolution: float | None = None,
                 wavelength: float | None = None) -> None:
        super().__init__(name, alt_names, spatial_resolution)
        self.wavelength = wavelength


class Sentinel1(SpectralBand):
    pass


class Sentinel2(SpectralBand):
    pass


class SegmentationClasses(BandInfo):
    def __init__(self, name: str, spatial_resolution: float, n_classes: int,
                 class_names: Sequence[str] | None = None) -> None:
        super().__init__(name, spatial_resolution=spatial_resolution)
        self.n_classes = n_classes
        self._class_names = class_names


class Classification:
    def __init__(self, n_classes: int, class_names: Sequence[str] | None = None) -> None:
        self.n_classes = n_classes
        self._class_names = class_names


class MultiLabelClassification:
    def __init__(self, n_classes: int, class_names: Sequence[str] | None = None) -> None:
        self.n_classes = n_classes
        self.class_name = class_names  # sic: geobench's attribute name for this type


class Regression:
    pass


class TaskSpecifications:
    def __init__(self, dataset_name: str, bands_info: list, spatial_resolution: float,
                 patch_size: tuple[int, int], label_type: Any, n_time_steps: int = 1) -> None:
        self.dataset_name = dataset_name
        self.benchmark_name = "converted"
        self.patch_size = patch_size
        self.n_time_steps = n_time_steps
        self.bands_info = bands_info
        self.label_type = label_type
        self.spatial_resolution = spatial_resolution


class Affine(tuple):
    """affine 2.x: a 9-tuple that pickles its six coefficients (``__getnewargs__``)."""

    def __new__(cls, a: float, b: float, c: float, d: float, e: float, f: float) -> Affine:
        return tuple.__new__(cls, (a, b, c, d, e, f, 0.0, 0.0, 1.0))

    def __getnewargs__(self) -> tuple:
        return tuple(self[:6])


class CRS:
    """rasterio.crs.CRS pickles its WKT string as state."""

    def __init__(self, wkt: str) -> None:
        self.wkt = wkt

    def __getstate__(self) -> str:
        return self.wkt

    def __setstate__(self, state: str) -> None:
        self.wkt = state


# class → (module under the geobench package, or a full module for the others)
_GEOBENCH = {BandInfo: "dataset", SpectralBand: "dataset", Sentinel1: "dataset",
             Sentinel2: "dataset", SegmentationClasses: "dataset", Classification: "label",
             MultiLabelClassification: "label", Regression: "label",
             TaskSpecifications: "task"}
_OTHERS = {Affine: "affine", CRS: "rasterio.crs"}


@contextlib.contextmanager
def pretend_modules(package: str = "geobench") -> Iterator[None]:
    """For one dump: the writer classes named ``<package>.<module>.<Name>``, ``affine.Affine``
    and ``rasterio.crs.CRS``, importable from throwaway modules removed afterwards."""
    homes = {cls: f"{package}.{module}" for cls, module in _GEOBENCH.items()} | _OTHERS
    modules: dict[str, types.ModuleType] = {}
    for cls, home in homes.items():
        parts = home.split(".")
        for i in range(1, len(parts) + 1):
            modules.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
        setattr(modules[home], cls.__name__, cls)
    clash = [m for m in modules if m in sys.modules]
    assert not clash, f"{clash} are really importable here; the test must not rely on them"
    originals = {cls: cls.__module__ for cls in homes}
    sys.modules.update(modules)
    try:
        for cls, home in homes.items():
            cls.__module__, cls.__qualname__ = home, cls.__name__
        yield
    finally:
        for cls, module in originals.items():
            cls.__module__ = module
        for name in modules:
            del sys.modules[name]


def dumps(obj: Any, package: str = "geobench", protocol: int = 4) -> bytes:
    with pretend_modules(package):
        return pickle.dumps(obj, protocol=protocol)


# --- GEO-Bench's band lists (geobench/dataset.py) ------------------------------------------

SENTINEL2_13 = [
    Sentinel2("01 - Coastal aerosol", ("1", "01"), 60, 0.443),
    Sentinel2("02 - Blue", ("2", "02", "blue"), 10, 0.49),
    Sentinel2("03 - Green", ("3", "03", "green"), 10, 0.56),
    Sentinel2("04 - Red", ("4", "04", "red"), 10, 0.665),
    Sentinel2("05 - Vegetation Red Edge", ("5", "05"), 20, 0.705),
    Sentinel2("06 - Vegetation Red Edge", ("6", "06"), 20, 0.74),
    Sentinel2("07 - Vegetation Red Edge", ("7", "07"), 20, 0.783),
    Sentinel2("08 - NIR", ("8", "08", "NIR"), 10, 0.842),
    Sentinel2("08A - Vegetation Red Edge", ("8A", "08A"), 20, 0.865),
    Sentinel2("09 - Water vapour", ("9", "09"), 60, 0.945),
    Sentinel2("10 - SWIR - Cirrus", ("10",), 60, 1.375),
    Sentinel2("11 - SWIR", ("11",), 20, 1.61),
    Sentinel2("12 - SWIR", ("12",), 20, 2.19),
]
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

TRANSFORM = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4200000.0)
CRS_32631 = CRS('PROJCS["WGS 84 / UTM zone 31N",AUTHORITY["EPSG","32631"]]')


# --- files ----------------------------------------------------------------------------------


def write_sample(folder: Path, name: str, bands: Mapping[BandInfo, np.ndarray], label: Any,
                 package: str = "geobench", protocol: int = 4) -> Path:
    """geobench's ``write_sample_hdf5``: ``label`` is a value, or a (band_info, array) pair
    for segmentation (appended as the band named ``label``)."""
    path = folder / f"{name}.hdf5"
    attrs: dict[str, Any] = {}
    items = list(bands.items())
    if isinstance(label, tuple):
        items.append(label)
    else:
        attrs["label"] = label
    with h5py.File(path, "w") as fp:
        for info, data in items:
            fp.create_dataset(name=info.name, data=data)
            attrs[info.name] = dict(
                date=datetime.date(2018, 6, 1), date_id=datetime.date(2018, 6, 1),
                spatial_resolution=info.spatial_resolution, band_info=info,
                meta_info={"source": "geobench_layout"}, transform=TRANSFORM, crs=CRS_32631)
        attrs["bands_order"] = [info.name for info, _ in items]
        fp.attrs["pickle"] = str(dumps(attrs, package, protocol))
    return path


def set_pickle_attribute(path: Path, text: str) -> None:
    """Replace a sample file's ``pickle`` attribute (for hostile or malformed ones)."""
    with h5py.File(path, "a") as fp:
        fp.attrs["pickle"] = text


def write_task_specs(folder: Path, specs: TaskSpecifications, package: str = "geobench") -> None:
    (folder / "task_specs.pkl").write_bytes(dumps(specs, package))


def write_band_stats(folder: Path, bands_info: Sequence[BandInfo]) -> None:
    stats = {}
    for info in bands_info:
        mean, std = BAND_STATS[info.name]
        stats[info.name] = {"min": 0.0, "max": 2 * mean, "mean": mean, "std": std,
                            "median": mean, "percentile_0_1": 0.0, "percentile_1": 0.0,
                            "percentile_5": 0.0, "percentile_95": 2 * mean,
                            "percentile_99": 2 * mean, "percentile_99_9": 2 * mean}
    (folder / "band_stats.json").write_text(json.dumps(stats, indent=2))


def write_partition(folder: Path, name: str, partition: Mapping[str, Sequence[str]]) -> Path:
    path = folder / f"{name}_partition.json"
    path.write_text(json.dumps({k: list(v) for k, v in partition.items()}, indent=2))
    return path


SPLIT_SIZES = {"train": 10, "valid": 3, "test": 3}


def write_dataset(folder: Path, bands_info: Sequence[BandInfo], label_type: Any,
                  labels: Any, size: int = 8, package: str = "geobench") -> Path:
    """A whole dataset: ``labels(i)`` gives sample i's label; samples ``s0000`` … split
    10/3/3; ``default`` links to ``original`` (as geobench saves it) and ``0.20x_train``
    keeps the first 2 train samples."""
    folder.mkdir(parents=True)
    write_task_specs(folder, TaskSpecifications(folder.name, list(bands_info), 10.0,
                                                (size, size), label_type), package)
    write_band_stats(folder, bands_info)
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


# --- hostile pickles -------------------------------------------------------------------------


class CallsOnLoad:
    """Pickles as ``call(*args)``: what a hostile file does to run code when unpickled."""

    def __init__(self, call: Any, *args: Any) -> None:
        self.call, self.args = call, args

    def __reduce__(self) -> tuple:
        return self.call, self.args
