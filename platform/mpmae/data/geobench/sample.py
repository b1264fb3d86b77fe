"""One GEO-Bench sample file, ``<sample_name>.hdf5``: its bands and its checked label.

geobench 1.0 writes one 2-D dataset per band, named by the band (a date suffix for time
series), and the file attribute ``pickle`` = ``str(pickle.dumps(d))``: per band its
``band_info`` and georeferencing, ``bands_order``, and ``label`` for classification. A
segmentation label is the band named ``label``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

from mpmae.data.geobench.errors import GeoBenchError
from mpmae.data.geobench.task_specs import LabelKind, TaskSpecs
from mpmae.data.geobench.unpickle import loads_attribute

SAMPLE_SUFFIX = ".hdf5"
LABEL_BAND = "label"

Label = int | np.ndarray


class Sample(NamedTuple):
    """``bands``: GEO-Bench band name → (H, W) array; ``label``: int, 0/1 vector or (H, W)."""

    bands: dict[str, np.ndarray]
    label: Label


def read_sample_file(path: Path, specs: TaskSpecs) -> Sample:
    """Read one sample file; every failure is a GeoBenchError naming it."""
    if not path.is_file():
        raise GeoBenchError(f"{path} not found: a partition names sample {path.stem} but "
                            "its file is missing; download the dataset again")
    try:
        with h5py.File(path, "r") as fp:
            attrs = loads_attribute(fp.attrs.get("pickle"), str(path))
            if not isinstance(attrs, dict):
                raise GeoBenchError(f"{path}: the 'pickle' attribute holds {type(attrs)}, "
                                    "not geobench's dict; download the file again")
            arrays = {d: _read_band(fp, d, path) for d in attrs.get("bands_order") or fp}
    except GeoBenchError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        # h5py reports a truncated or corrupt file as OSError, a missing band as KeyError.
        reason = " ".join(str(exc).split())
        raise GeoBenchError(f"{path}: not a readable GEO-Bench HDF5 file ({reason}); "
                            "download it again") from None
    bands = _named_bands(path, attrs, arrays)
    label_band = bands.pop(LABEL_BAND, None)
    return Sample(bands, _label(path, specs, attrs, label_band))


def _read_band(fp: h5py.File, name: Any, path: Path) -> np.ndarray:
    """A band stored in the file itself. HDF5 can point a dataset at other files (external
    storage, external links, virtual datasets): a downloaded file could read any file of
    this machine that way, or hang on a FIFO, so such bands are refused."""
    if not isinstance(name, str) or "/" in name:
        raise GeoBenchError(f"{path}: band {name!r} is not a plain dataset name; the file is "
                            "damaged or hostile, download it again")
    link = fp.get(name, getlink=True)
    if link is None:
        raise KeyError(name)
    dataset = fp[name] if isinstance(link, h5py.HardLink) else None
    if not isinstance(dataset, h5py.Dataset) or dataset.external or dataset.is_virtual:
        raise GeoBenchError(f"{path}: band {name!r} is stored outside the file (a link, "
                            "external or virtual dataset), which GEO-Bench files never are; "
                            "the file is damaged or hostile, download it again")
    return np.asarray(dataset[()])


def _named_bands(path: Path, attrs: dict, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Key the arrays by their band's name (the dataset name adds a date suffix when dated)."""
    bands: dict[str, np.ndarray] = {}
    for descriptor, data in arrays.items():
        info = attrs.get(descriptor)
        name = getattr(info.get("band_info"), "name", None) if isinstance(info, dict) else None
        if not isinstance(name, str):
            raise GeoBenchError(f"{path}: band {descriptor!r} has no band_info in the "
                                "'pickle' attribute; download the file again")
        if name in bands:
            raise GeoBenchError(f"{path}: band {name!r} appears at several dates (a time "
                                "series); only single-date datasets are supported")
        if data.ndim != 2:
            raise GeoBenchError(f"{path}: band {name!r} has shape {data.shape}, not (H, W)")
        bands[name] = data
    return bands


def _label(path: Path, specs: TaskSpecs, attrs: dict, label_band: np.ndarray | None) -> Label:
    if specs.label_kind is LabelKind.SEGMENTATION:
        if label_band is None:
            raise GeoBenchError(f"{path}: segmentation sample without a '{LABEL_BAND}' band")
        return _class_map(path, label_band, specs.n_classes)
    if "label" not in attrs:
        raise GeoBenchError(f"{path}: no 'label' in the 'pickle' attribute")
    if specs.label_kind is LabelKind.MULTI_LABEL:
        return _multi_hot(path, attrs["label"], specs.n_classes)
    return _class_index(path, attrs["label"], specs.n_classes)


def _class_index(path: Path, value: Any, n_classes: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise GeoBenchError(f"sample {path.stem} ({path}): label {value!r} is not a class index")
    if not 0 <= value < n_classes:
        raise GeoBenchError(f"sample {path.stem} ({path}): label {value} is outside the "
                            f"{n_classes} classes 0..{n_classes - 1}")
    return int(value)


def _multi_hot(path: Path, value: Any, n_classes: int) -> np.ndarray:
    vector = np.asarray(value)
    if vector.shape != (n_classes,) or not np.isin(vector, (0, 1)).all():
        raise GeoBenchError(f"sample {path.stem} ({path}): multi-label label of shape "
                            f"{vector.shape} is not a 0/1 vector of {n_classes} classes")
    return vector.astype(np.int64)


def _class_map(path: Path, band: np.ndarray, n_classes: int) -> np.ndarray:
    if not np.issubdtype(band.dtype, np.number):
        raise GeoBenchError(f"sample {path.stem} ({path}): label band of dtype {band.dtype} "
                            "is not a class map")
    classes = band.astype(np.int64)
    if (classes != band).any() or classes.min() < 0 or classes.max() >= n_classes:
        raise GeoBenchError(f"sample {path.stem} ({path}): label band holds values outside "
                            f"the {n_classes} classes 0..{n_classes - 1}")
    return classes
