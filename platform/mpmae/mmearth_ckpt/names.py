"""The authors' checkpoint names: ``pt-{INPUT}_{MODEL}_{DATA}_{LOSS}_{IMG}-{PATCH}``.

E.g. ``pt-all_mod_atto_1M_64_uncertainty_56-8`` (MMEarth-train README); GEO-Bench notes
spell the last separator ``_``, so both are read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_NAME = re.compile(
    r"pt-(?P<input>S2|all_mod|img_mod|pix_mod|rgb)_(?P<size>atto|femto|pico|nano|tiny)_"
    r"(?P<data>100k_128|1M_64|1M_128)_(?P<loss>uncertainty|unweighted)_"
    r"(?P<image>\d+)[-_](?P<patch>\d+)")

# The authors' INPUT part → mpmae's pretext set of the same tasks.
PRETEXT = {"S2": "S2", "all_mod": "all", "img_mod": "img", "pix_mod": "pix", "rgb": "rgb"}
DATASET = {"100k_128": "MMEarth100k", "1M_64": "MMEarth64", "1M_128": "MMEarth"}


@dataclass(frozen=True)
class CheckpointName:
    """What a standard name says about the pretraining run."""

    name: str
    pretext: str  # mpmae's pretext set name
    size: str
    dataset: str
    loss_weighting: str
    image_size: int
    patch_size: int

    def as_metadata(self) -> dict:
        return {"name": self.name, "pretext": self.pretext, "size": self.size,
                "dataset": self.dataset, "loss_weighting": self.loss_weighting,
                "image_size": self.image_size, "patch_size": self.patch_size}


def parse_name(name: str) -> CheckpointName | None:
    """The fields of a standard name; None when ``name`` is not one."""
    m = _NAME.fullmatch(name)
    if m is None:
        return None
    return CheckpointName(name, PRETEXT[m["input"]], m["size"], DATASET[m["data"]], m["loss"],
                          int(m["image"]), int(m["patch"]))


def name_of(checkpoint: Path) -> str:
    """The name a downloaded checkpoint carries: the authors ship ``<name>/checkpoint-199.pth``,
    so the folder's name when the file's own is not standard."""
    if parse_name(checkpoint.stem) is None and parse_name(checkpoint.parent.name) is not None:
        return checkpoint.parent.name
    return checkpoint.stem
