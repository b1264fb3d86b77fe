"""Keeps Ray's internal noise that no user can act on out of the embedded Ray's console.

- Ray Train starts a placement-group cleaner beside every run. It asks the Ray state API,
  which the dashboard serves, whether the run's controller still lives; the embedded Ray
  has no dashboard (see :func:`mpmae.cluster.connect.connect`), so every check fails and
  logs a warning, once a second. The cleaner frees a dead controller's resources on a
  long-lived cluster; the embedded Ray ends with the run, so hiding it loses nothing.
- The preemption watcher reacts to spot nodes being reclaimed; one laptop or VM has none
  (on a single machine it also logs a core-worker error about its constructor arguments).
- Ray Train raises a deprecation warning against Ray Data's own calls.
- Ray Data logs three INFO lines to the console at every epoch of a training stream
  ("Starting execution…", its plan, "execution finished"); they stay in ray-data.log.
"""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path

import yaml

from mpmae.storage import resolve

CLEANER_LOGGER = "ray.train.v2._internal.execution.controller.placement_group_cleaner"


def setup() -> None:
    """A Ray ``worker_process_setup_hook``: runs in every worker process as it starts."""
    from ray.util.annotations import RayDeprecationWarning

    logging.getLogger(CLEANER_LOGGER).setLevel(logging.ERROR)
    # Only where Ray itself calls its deprecated API: a user's own call still warns.
    warnings.filterwarnings("ignore", category=RayDeprecationWarning, module=r"ray\.")


def embedded_runtime_env(folder: Path) -> dict:
    """The job runtime environment of the Ray that ``mpmae`` starts on this machine;
    ``folder`` receives the Ray Data logging config it points to."""
    env_vars = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}
    logging_config = _ray_data_logging_config(folder)
    if logging_config:
        env_vars["RAY_DATA_LOGGING_CONFIG"] = str(logging_config)
    return {"worker_process_setup_hook": f"{__name__}.setup", "env_vars": env_vars}


def _ray_data_logging_config(folder: Path) -> Path | None:
    """Ray Data's own logging config with the console at WARNING, as a YAML file; None
    where this Ray version keeps its default elsewhere (its logs then stay as they are)."""
    try:
        from ray.data._internal.logging import DEFAULT_CONFIG
    except ImportError:
        return None
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["handlers"]["console"]["level"] = "WARNING"
    path = folder / "ray-data-logging.yaml"
    # Atomic: a second local run rewriting it must never let a worker read half a file.
    resolve(path).write_bytes_atomic(yaml.safe_dump(config).encode())
    return path
