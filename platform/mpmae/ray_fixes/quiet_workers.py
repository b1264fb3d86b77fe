"""Keeps Ray's internal noise that no user can act on out of the embedded Ray's console.

- Ray Train starts a placement-group cleaner beside every run. It asks the Ray state API,
  which the dashboard serves, whether the run's controller still lives; the embedded Ray
  has no dashboard (see :func:`mpmae.cluster.connect.connect`). The setup hook points the
  check at the worker's own GCS (:mod:`mpmae.ray_fixes.cleaner_check`); where a Ray lacks
  what that needs, every check fails and logs a warning, once a second, hidden here. The
  cleaner frees a dead controller's resources on a long-lived cluster; the embedded Ray
  ends with the run, so hiding it loses nothing.
- The preemption watcher reacts to spot nodes being reclaimed; one laptop or VM has none
  (on a single machine it also logs a core-worker error about its constructor arguments).
- Ray Train raises a deprecation warning against Ray Data's own calls.
- Ray Data logs three INFO lines to the console at every epoch of a training stream
  ("Starting execution…", its plan, "execution finished"); they stay in ray-data.log.
- Ray Train logs every report (all metrics) at INFO, under a logger named by the file
  path of its private execution context.
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from pathlib import Path

import yaml

from mpmae.ray_fixes.cleaner_check import install as check_cleaner_on_own_cluster
from mpmae.ray_fixes.guard import private
from mpmae.storage import resolve

QUIET_WORKERS, QUIET_DRIVER = "quiet_workers", "quiet_driver"
RAY_DATA_LOGGING = ("ray.data._internal.logging", "DEFAULT_CONFIG")
TRAIN_CONTEXT = ("ray.train.v2._internal.execution", "context")
CLEANER_LOGGER = "ray.train.v2._internal.execution.controller.placement_group_cleaner"


def setup() -> None:
    """A Ray ``worker_process_setup_hook``: runs in every worker process as it starts."""
    from ray.util.annotations import RayDeprecationWarning

    check_cleaner_on_own_cluster()
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


def quiet_driver() -> None:
    """Keep a training driver's console to our progress line: no per-report dumps of every
    metric, no progress bars."""
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    names = ["ray.data", "ray.train"]
    context = private(*TRAIN_CONTEXT, QUIET_DRIVER)
    if context is not None:
        names.append(context.__file__)
    for name in names:
        logging.getLogger(name).setLevel(logging.WARNING)


def _ray_data_logging_config(folder: Path) -> Path | None:
    """Ray Data's own logging config with the console at WARNING, as a YAML file; None
    where this Ray version keeps its default elsewhere (its logs then stay as they are)."""
    default = private(*RAY_DATA_LOGGING, QUIET_WORKERS)
    if default is None:
        return None
    config = copy.deepcopy(default)
    config["handlers"]["console"]["level"] = "WARNING"
    path = folder / "ray-data-logging.yaml"
    # Atomic: a second local run rewriting it must never let a worker read half a file.
    resolve(path).write_bytes_atomic(yaml.safe_dump(config).encode())
    return path
