"""``task_specs.pkl``: what a GEO-Bench dataset holds, as our own plain types.

The file is a pickled ``geobench.task.TaskSpecifications``; the allow-list unpickler turns
it into stand-ins, and :func:`read_task_specs` copies what an evaluator needs out of them
(checked) so nothing downstream touches a stand-in.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from mpmae.data.geobench.errors import GeoBenchError
from mpmae.data.geobench.standins import kind_of
from mpmae.data.geobench.unpickle import load_file

TASK_SPECS_FILE = "task_specs.pkl"


class LabelKind(str, Enum):
    CLASSIFICATION = "classification"  # one int per sample
    MULTI_LABEL = "multi_label"  # a 0/1 vector of n_classes per sample
    SEGMENTATION = "segmentation"  # an (H, W) int band named "label"
    REGRESSION = "regression"  # an (H, W) float target (GEO-Bench-2's BioMassters only)


# geobench label types → what a sample's label is. SemanticSegmentation is geobench's
# label-side name for the same thing as the band-side SegmentationClasses.
LABEL_KINDS = {
    "Classification": LabelKind.CLASSIFICATION,
    "MultiLabelClassification": LabelKind.MULTI_LABEL,
    "SegmentationClasses": LabelKind.SEGMENTATION,
    "SemanticSegmentation": LabelKind.SEGMENTATION,
}


@dataclass(frozen=True)
class BandSpec:
    """One band of the dataset; ``sensor`` is the geobench class (``"Sentinel2"``, …)."""

    name: str
    alt_names: tuple[str, ...]
    sensor: str
    spatial_resolution: float | None
    wavelength: float | None


@dataclass(frozen=True)
class TaskSpecs:
    dataset_name: str  # as written in the pickle; the dataset's own name is its folder's
    bands: tuple[BandSpec, ...]
    patch_size: tuple[int, ...]
    n_time_steps: int | None
    label_kind: LabelKind
    n_classes: int
    class_names: tuple[str, ...]  # empty where the file names none


def read_task_specs(folder: Path) -> TaskSpecs:
    """Read and check ``<folder>/task_specs.pkl``."""
    path = folder / TASK_SPECS_FILE
    if not path.is_file():
        raise GeoBenchError(f"{path} not found: is {folder} a GEO-Bench dataset folder "
                            "(e.g. classification_v1.0/m-eurosat)?")
    return task_specs_from(load_file(path), str(path))


def task_specs_from(specs: Any, where: str) -> TaskSpecs:
    """Our :class:`TaskSpecs` from an unpickled ``TaskSpecifications`` stand-in."""
    if kind_of(specs) != "TaskSpecifications":
        raise GeoBenchError(f"{where} holds {specs!r}, not geobench TaskSpecifications; "
                            "download the dataset again")
    label_type = getattr(specs, "label_type", None)
    kind = LABEL_KINDS.get(kind_of(label_type))
    if kind is None:
        raise GeoBenchError(f"{where}: label type {label_type!r} is not one we evaluate "
                            f"({', '.join(LABEL_KINDS)})")
    n_classes = _n_classes(label_type, where)
    return TaskSpecs(
        dataset_name=str(getattr(specs, "dataset_name", "")),
        bands=tuple(_band(b, where) for b in getattr(specs, "bands_info", None) or ()
                    if kind_of(b) != "SegmentationClasses"),
        patch_size=tuple(int(s) for s in getattr(specs, "patch_size", None) or ()),
        n_time_steps=_optional_int(getattr(specs, "n_time_steps", None)),
        label_kind=kind,
        n_classes=n_classes,
        class_names=_class_names(label_type, n_classes, where),
    )


def _band(info: Any, where: str) -> BandSpec:
    name = getattr(info, "name", None)
    if not kind_of(info) or not isinstance(name, str):
        raise GeoBenchError(f"{where}: bands_info holds {info!r}, not a named geobench band")
    return BandSpec(
        name=name,
        alt_names=tuple(str(a) for a in getattr(info, "alt_names", None) or ()),
        sensor=kind_of(info),
        spatial_resolution=_optional_float(getattr(info, "spatial_resolution", None)),
        wavelength=_optional_float(getattr(info, "wavelength", None)),
    )


def _n_classes(label_type: Any, where: str) -> int:
    n = getattr(label_type, "n_classes", None)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise GeoBenchError(f"{where}: the label type has n_classes={n!r}, not a positive int")
    return n


def _class_names(label_type: Any, n_classes: int, where: str) -> tuple[str, ...]:
    # Classification and SegmentationClasses keep them as _class_names (behind a
    # property), MultiLabelClassification as class_name; older pickles as class_names.
    for attr in ("_class_names", "class_name", "class_names"):
        names = getattr(label_type, attr, None)
        if names is not None:
            break
    names = tuple(str(n) for n in names or ())
    if names and len(names) != n_classes:
        raise GeoBenchError(f"{where}: {len(names)} class names for {n_classes} classes")
    return names


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
