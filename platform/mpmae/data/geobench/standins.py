"""Inert stand-ins for the classes GEO-Bench pickles name.

A GEO-Bench pickle names ``geobench``/``ccb`` classes, ``affine.Affine`` and rasterio's
``CRS``; we install none of those packages (their pins conflict with our stack), and we
would not want their code run by untrusted files anyway. Each known name maps to a class
here that only keeps what the pickle hands it: constructor arguments (``args``) and the
``__setstate__`` state (a dict becomes attributes, anything else is kept as ``state``).
"""

from __future__ import annotations

from typing import Any


class StandIn:
    """Keeps the arguments and state a pickle gives it; has no behaviour of its own."""

    pickled_as = ""  # the ``module.Name`` the pickle used, set per subclass

    def __new__(cls, *args: Any) -> StandIn:
        # NEWOBJ/REDUCE call the class with the original constructor's arguments
        # (Affine's six coefficients, for instance); keep them rather than interpret them.
        obj = super().__new__(cls)
        obj.args = args
        return obj

    def __setstate__(self, state: Any) -> None:
        # Plain objects pickle their __dict__; rasterio's CRS pickles its WKT string.
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.state = state

    def __repr__(self) -> str:
        return f"<stand-in for {self.pickled_as}>"


# Where each class lives in geobench 1.0 (geobench/{task,label,dataset}.py); the same
# classes were pickled under geobench.io.* and ccb.io.* by earlier versions. The metric
# classes are kept by geobench itself only "for loading old pickles" (old task specs
# carry one as ``eval_loss``); Regression is an old label type we can read but not evaluate.
GEOBENCH_CLASSES = {
    "task": ("TaskSpecifications", "Accuracy", "SegmentationAccuracy", "MultilabelAccuracy"),
    "label": ("LabelType", "Classification", "SemanticSegmentation",
              "MultiLabelClassification", "Regression"),
    "dataset": ("BandInfo", "SpectralBand", "Sentinel1", "Sentinel2", "Landsat8", "Mask",
                "ElevationBand", "MultiBand", "HyperSpectralBands", "CloudProbability",
                "SegmentationClasses"),
}
GEOBENCH_PACKAGES = ("geobench", "geobench.io", "ccb.io")
OTHER_CLASSES = (("affine", "Affine"), ("rasterio.crs", "CRS"))


def _stand_in_class(name: str, pickled_as: str) -> type[StandIn]:
    return type(name, (StandIn,), {"pickled_as": pickled_as, "__module__": __name__})


def _build_stand_ins() -> dict[tuple[str, str], type[StandIn]]:
    """(module, name) → stand-in; one class per name, shared by every module spelling."""
    table: dict[tuple[str, str], type[StandIn]] = {}
    for module, names in GEOBENCH_CLASSES.items():
        for name in names:
            cls = _stand_in_class(name, f"geobench.{module}.{name}")
            for package in GEOBENCH_PACKAGES:
                table[(f"{package}.{module}", name)] = cls
    for module, name in OTHER_CLASSES:
        table[(module, name)] = _stand_in_class(name, f"{module}.{name}")
    return table


STAND_INS = _build_stand_ins()


def kind_of(obj: object) -> str:
    """The class name a stand-in was pickled as (``"Sentinel2"``), or ``""`` for others."""
    return type(obj).__name__ if isinstance(obj, StandIn) else ""
