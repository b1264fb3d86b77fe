"""Writes GEO-Bench v1.0 dataset folders exactly as geobench 1.0 lays them out, without
geobench: ``mpmae data synth`` exports its labelled set this way, and the reader's tests
write their fixtures with it.

The classes below stand in for geobench's, affine's and rasterio's on the *writer* side:
each pickles under the real ``module.Name`` (``geobench.dataset.Sentinel2``,
``affine.Affine``, …) with the state the real class pickles (plain ``__dict__``; Affine's six
coefficients; CRS's WKT string). A pickler that writes those names for these classes does
it without those modules existing.

The layout (geobench/dataset.py ``write_sample_hdf5``, task.py ``TaskSpecifications.save``):

    <folder>/task_specs.pkl           pickle.dump(TaskSpecifications, protocol=4)
    <folder>/band_stats.json          band name → {min, max, mean, std, median, percentile_*}
    <folder>/<name>_partition.json    {"train": [...], "valid": [...], "test": [...]}
    <folder>/<sample>.hdf5            one 2-D dataset per band, named by the band;
                                      attrs["pickle"] = str(pickle.dumps(d))
"""

from __future__ import annotations

import datetime
import io
import json
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mpmae.data.geobench.task_specs import TASK_SPECS_FILE

# --- writer-side classes (attributes as geobench 1.0 sets them) ----------------------------


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


class _GeoBenchPickler(pickle._Pickler):
    """Names the writer classes by their geobench/affine/rasterio homes. The pure-Python
    pickler is the one whose ``save_global`` can be overridden; the files are small."""

    def __init__(self, file: io.BytesIO, protocol: int, package: str) -> None:
        super().__init__(file, protocol=protocol)
        self.homes = {cls: f"{package}.{module}" for cls, module in _GEOBENCH.items()}
        self.homes |= _OTHERS

    def save_global(self, obj: Any, name: str | None = None) -> None:
        home = self.homes.get(obj) if isinstance(obj, type) else None
        if home is None:
            super().save_global(obj, name)
            return
        if self.proto >= 4:
            self.save(home)
            self.save(obj.__name__)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"{home}\n{obj.__name__}\n".encode())
        self.memoize(obj)


def dumps(obj: Any, package: str = "geobench", protocol: int = 4) -> bytes:
    """``pickle.dumps`` as geobench's files hold it (``package``: geobench, or the older
    geobench.io / ccb.io module paths)."""
    buffer = io.BytesIO()
    _GeoBenchPickler(buffer, protocol, package).dump(obj)
    return buffer.getvalue()


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
                meta_info={"source": "mpmae"}, transform=TRANSFORM, crs=CRS_32631)
        attrs["bands_order"] = [info.name for info, _ in items]
        fp.attrs["pickle"] = str(dumps(attrs, package, protocol))
    return path


def write_task_specs(folder: Path, specs: TaskSpecifications, package: str = "geobench") -> None:
    (folder / TASK_SPECS_FILE).write_bytes(dumps(specs, package))


def write_band_stats(folder: Path, stats: Mapping[str, Mapping[str, float]]) -> None:
    """``band_stats.json``: band name → {min, max, mean, std, median, percentile_*}."""
    (folder / "band_stats.json").write_text(json.dumps(stats, indent=2))


def band_stats(values: np.ndarray) -> dict[str, float]:
    """The statistics geobench writes for one band's values (all samples)."""
    v = np.asarray(values, np.float64).ravel()
    p = np.percentile(v, [0.1, 1, 5, 50, 95, 99, 99.9])
    return {"min": float(v.min()), "max": float(v.max()), "mean": float(v.mean()),
            "std": float(v.std()), "median": float(p[3]), "percentile_0_1": float(p[0]),
            "percentile_1": float(p[1]), "percentile_5": float(p[2]),
            "percentile_95": float(p[4]), "percentile_99": float(p[5]),
            "percentile_99_9": float(p[6])}


def write_partition(folder: Path, name: str, partition: Mapping[str, Sequence[str]]) -> Path:
    path = folder / f"{name}_partition.json"
    path.write_text(json.dumps({k: list(v) for k, v in partition.items()}, indent=2))
    return path
