"""A run's folder and its MLflow run: written once for a pretraining run, a sweep and
each of its trials.

The folder (``<storage.root>/<name>/``) holds ``run.json``, the MLflow run id, so that a
re-run re-attaches instead of duplicating, and ``config.yaml``, the resolved config.
:func:`tracked_run` opens both and ends the MLflow run FINISHED, or FAILED on any error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mpmae.config import Scalar, dump_yaml
from mpmae.errors import Preempted
from mpmae.storage import Location
from mpmae.track.runs import end_run, start_run

if TYPE_CHECKING:
    from mpmae.model.config import MPMAEConfig
    from mpmae.track.config import MlflowConfig

RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"


@dataclass(frozen=True)
class TrackedRun:
    """An open run: its name, folder and MLflow run id; ``resumed`` if it existed before."""

    name: str
    folder: Location
    mlflow_run_id: str
    resumed: bool


def read_run_file(folder: Location) -> dict:
    """What the folder's ``run.json`` says (empty when there is none yet)."""
    try:
        return json.loads(folder.join(RUN_FILE).read_bytes())
    except FileNotFoundError:
        return {}


@contextmanager
def tracked_run(
    folder: Location,
    settings: MlflowConfig,
    *,
    experiment: str,
    name: str,
    config: Any,
    model: MPMAEConfig,
    params: Mapping[str, Scalar] | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[TrackedRun]:
    """Start the MLflow run (or re-attach to the one ``run.json`` names), save the run
    file and ``config``, and end the run as the block ends (FAILED if it raises, KILLED
    if interrupted or preempted)."""
    previous = read_run_file(folder)
    run_id = start_run(settings, experiment=experiment, run_name=name, config=config,
                       model=model, run_id=previous.get("mlflow_run_id"), params=params,
                       tags=tags)
    try:
        folder.join(RUN_FILE).write_bytes_atomic(
            json.dumps({"mlflow_run_id": run_id}).encode())
        folder.join(CONFIG_FILE).write_bytes_atomic(dump_yaml(config).encode())
        yield TrackedRun(name, folder, run_id, bool(previous))
    except (KeyboardInterrupt, Preempted):
        end_run("KILLED")  # re-attached and RUNNING again when the same command resumes
        raise
    except BaseException:
        end_run("FAILED")
        raise
    end_run("FINISHED")
