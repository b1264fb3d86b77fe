"""``mpmae evaluate ENCODER… DATASET…``: which arguments name encoders and which datasets.

- a dataset is a folder holding ``task_specs.pkl`` (GEO-Bench v1) or ``*.tortilla`` files
  (GEO-Bench-2), or a benchmark folder whose subfolders hold one each
  (``classification_v1.0``, a GEO-Bench-2 download);
- an encoder is ``random:SIZE``, ``models:/…`` or ``runs:/…``, a release folder (holding
  ``config.json``), an ``s3://`` URI (a release folder on S3, checked when it is opened),
  or a pretraining run name (letters, digits, ``_ . -``; no local folder of that name).

Encoders come first, then datasets. Anything else — a folder that is both, a path that is
neither, datasets before an encoder, an encoder named twice — is refused with what each
argument was taken as.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mpmae.config import NAME_PATTERN, ConfigError
from mpmae.data.geobench.task_specs import TASK_SPECS_FILE
from mpmae.evaluate.command.encoders import RANDOM_PREFIX, S3_PREFIX
from mpmae.evaluate.command.geobench2_source import TORTILLA_GLOB, holds_tortillas
from mpmae.model.release import CONFIG_FILE

ENCODER, DATASET = "encoder", "dataset"


@dataclass(frozen=True)
class Taken:
    """What one argument was taken as: its role (None: unusable) and why."""

    argument: str
    role: str | None
    reason: str

    def __str__(self) -> str:
        return f"{self.argument!r} → {self.role or 'unknown'} ({self.reason})"


@dataclass(frozen=True)
class Targets:
    encoders: list[str]
    datasets: list[str]


def split_targets(arguments: list[str]) -> Targets:
    """The encoders and the datasets, or a ConfigError listing how each was taken."""
    taken = [take(a) for a in arguments]
    roles = [t.role for t in taken]
    encoders = [t.argument for t in taken if t.role == ENCODER]
    datasets = [t.argument for t in taken if t.role == DATASET]
    if None in roles:
        problem = "some arguments are neither an encoder nor a dataset"
    elif not encoders:
        problem = "no encoder given"
    elif not datasets:
        problem = "no dataset given"
    elif roles != [ENCODER] * len(encoders) + [DATASET] * len(datasets):
        problem = "encoders must all come before the datasets"
    elif len(set(encoders)) < len(encoders):
        problem = "an encoder is named twice"
    else:
        return Targets(encoders, datasets)
    raise ConfigError(
        f"evaluate's arguments: {problem}; taken as: {'; '.join(map(str, taken))}. Give "
        f"ENCODER… DATASET…: an encoder is random:SIZE, models:/…, runs:/…, a release folder "
        f"(local or s3://…) or a run name; a dataset is a folder holding {TASK_SPECS_FILE} "
        f"or GEO-Bench-2's {TORTILLA_GLOB} files, or a benchmark folder of them")


def take(argument: str) -> Taken:
    """How one argument reads (see the module docstring)."""
    if argument.startswith(RANDOM_PREFIX):
        return Taken(argument, ENCODER, "random:SIZE")
    if argument.startswith(("models:/", "runs:/")):
        return Taken(argument, ENCODER, "an MLflow model URI")
    if argument.startswith(S3_PREFIX):  # datasets are local folders: S3 holds releases
        return Taken(argument, ENCODER, "a release folder on S3")
    path = Path(argument)
    release = (path / CONFIG_FILE).is_file()
    dataset = (path / TASK_SPECS_FILE).is_file() or holds_tortillas(path)
    benchmark = path.is_dir() and not dataset and any(
        any(path.glob(f"*/{pattern}")) for pattern in (TASK_SPECS_FILE, TORTILLA_GLOB))
    if release and (dataset or benchmark):
        return Taken(argument, None, f"holds both {CONFIG_FILE} (an encoder release) and "
                                     f"{TASK_SPECS_FILE} (a dataset)")
    if release:
        return Taken(argument, ENCODER, "a release folder")
    if dataset:
        return Taken(argument, DATASET, f"a folder holding {TASK_SPECS_FILE}"
                     if (path / TASK_SPECS_FILE).is_file() else "a GEO-Bench-2 dataset folder")
    if benchmark:
        return Taken(argument, DATASET, "a benchmark folder")
    if path.is_dir():
        return Taken(argument, None, f"a folder with no {CONFIG_FILE}, {TASK_SPECS_FILE} or "
                                     f"{TORTILLA_GLOB} in it or its subfolders")
    if path.exists():
        return Taken(argument, None, "a file, not a folder")
    if NAME_PATTERN.fullmatch(argument):
        return Taken(argument, ENCODER, "a pretraining run name")
    return Taken(argument, None, "no such folder, and not a run name")
