"""The MLflow run of one training run: start or re-attach, params, tags, metric names, end.

Rank 0 calls these with plain ``mlflow`` (Ray's MLflow callback does not work with Train
V2); its metrics and figures go through :mod:`mpmae.track.sink`. The run id is stored in
the checkpoint, so a restarted run passes it back to :func:`start_run` and keeps logging
into the same MLflow run. ``mlflow`` is imported inside
the functions: importing this module costs workers nothing.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mpmae.config import Scalar, cache_dir, dump_yaml, flatten
from mpmae.errors import MpmaeError
from mpmae.redact import redact_text
from mpmae.track.server_check import short_http, shown, why_not_answering
from mpmae.version import __version__

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mpmae.model.config import MPMAEConfig
    from mpmae.model.mpmae import MPMAEOutput
    from mpmae.track.config import MlflowConfig

RunStatus = Literal["FINISHED", "FAILED", "KILLED"]
CONFIG_ARTIFACT = "config.yaml"
# MLflow's limits (mlflow.utils.validation); its own truncation only warns if enabled.
MAX_PARAM_LENGTH = 6000
PARAMS_PER_BATCH = 100
TRUNCATION_MARK = "...[truncated]"

_log = logging.getLogger(__name__)


class TrackingError(MpmaeError, RuntimeError):
    """The tracking server holds something that stops a run: the message says what to do."""


def tracking_uri(settings: MlflowConfig) -> str:
    """The config's URI, else ``$MLFLOW_TRACKING_URI``, else SQLite in the mpmae cache."""
    uri = settings.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri:
        return uri
    cache_dir().mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{cache_dir() / 'mlflow.db'}"


def start_run(
    settings: MlflowConfig,
    *,
    experiment: str,
    run_name: str,
    config: Any,
    model: MPMAEConfig,
    run_id: str | None = None,
    params: Mapping[str, Scalar] | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Start the run (or re-attach to ``run_id``), make it active and return its id.

    Logs ``flatten(config)`` plus ``params`` as params, the mpmae tags of
    ``model`` plus ``tags``, and ``config`` as ``config.yaml``. A ``run_id`` the tracking
    server does not know (or that was deleted) starts a new run tagged
    ``mpmae.resumed_from`` instead of failing. A server that does not answer is a
    :class:`TrackingError` within seconds (MLflow itself would retry for minutes).
    """
    import mlflow

    uri = tracking_uri(settings)
    require_answering(uri)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    all_tags = {**run_tags(model), **(tags or {})}
    if run_id and not _resumable(client, run_id):
        _log.warning("MLflow run %s is not in %s (deleted, or another tracking server); "
                     "starting a new run", run_id, uri)
        all_tags["mpmae.resumed_from"] = run_id
        run_id = None
    new_in = None if run_id else experiment_id(client, experiment, uri)
    run = mlflow.start_run(run_id=run_id, experiment_id=new_in, run_name=run_name,
                           tags=all_tags, log_system_metrics=_system_metrics(settings))
    active_id = run.info.run_id
    _log_params(client, active_id, {**flatten(config), **(params or {})})
    mlflow.log_text(dump_yaml(config), CONFIG_ARTIFACT)
    return active_id


def require_answering(uri: str) -> None:
    """Raise :class:`TrackingError` if the tracking server at ``uri`` does not answer."""
    reason = why_not_answering(uri)
    if reason:
        raise TrackingError(f"MLflow at {shown(uri)} is not answering ({reason}): start it, "
                            "or set mlflow.tracking_uri to a server that answers (empty: a "
                            "local SQLite store)")


def end_run(status: RunStatus = "FINISHED") -> None:
    """End the active run as FINISHED, FAILED or KILLED (no-op if none is active).

    A tracking server that is away does not fail the run (nor hold it for minutes): the run
    stays RUNNING there, and a warning says so.
    """
    import mlflow

    run = mlflow.active_run()
    if run is None:
        return
    uri = mlflow.get_tracking_uri()
    try:
        with short_http():
            mlflow.end_run(status)
    except Exception as e:  # the server's absence shows as MLflow's or requests' errors
        reason = why_not_answering(uri)
        if reason is None:
            raise
        _log.warning("MLflow at %s is not answering (%s): run %s stays RUNNING there instead "
                     "of %s; its checkpoints and encoder are in the run folder",
                     shown(uri), reason, run.info.run_id, status, exc_info=e)


def training_metrics(
    output: MPMAEOutput, *, lr: float, tiles_per_s: float, data_wait_fraction: float
) -> dict[str, float]:
    """The metric names the dashboards expect, from a model output (``loss``,
    ``task_losses``, ``task_weights``) and loop timings. Reads tensors: a device sync."""
    metrics = {
        "loss": float(output.loss.detach()),
        "lr": lr,
        "tiles_per_s": tiles_per_s,
        "data_wait_fraction": data_wait_fraction,
    }
    for task, value in output.task_losses.items():
        metrics[f"loss/{task}"] = float(value.detach())
    for task, value in output.task_weights.items():
        metrics[f"weight/{task}"] = float(value)
    return metrics


def model_tags(model: MPMAEConfig) -> dict[str, str]:
    """What a model is, for filtering runs and registered versions: version, pretext, size."""
    return {"mpmae.version": __version__, "mpmae.pretext": model.pretext_set.name,
            "mpmae.model_size": model.size}


def run_tags(model: MPMAEConfig) -> dict[str, str]:
    """What a run is, for filtering in the UI: :func:`model_tags` and the commit."""
    tags = model_tags(model)
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def git_commit() -> str | None:
    """The commit of the mpmae checkout this code runs from; None for an installed copy."""
    package = Path(__file__).resolve().parents[1]
    try:
        top, commit = subprocess.run(
            ["git", "rev-parse", "--show-toplevel", "HEAD"], cwd=package, timeout=10,
            capture_output=True, text=True, check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    # A site-packages copy inside some unrelated repository must not borrow its commit.
    return commit if Path(top, "platform", "mpmae").resolve() == package else None


def experiment_id(client: MlflowClient, name: str, uri: str) -> str:
    """The experiment's id, created on first use; artifacts of a local SQLite store go
    next to its database file (MLflow's default would be ./mlruns of whatever directory
    the Ray worker runs in)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return client.create_experiment(name, artifact_location=_artifact_root(uri))
        except MlflowException as e:
            if e.error_code != "RESOURCE_ALREADY_EXISTS":  # a concurrent trial won the race
                raise
            found = client.get_experiment_by_name(name)
    if found.lifecycle_stage != "active":
        raise TrackingError(
            f"MLflow experiment {name!r} is deleted: restore it (`mlflow experiments restore "
            f"--experiment-id {found.experiment_id}`) or set mlflow.experiment to another name"
        )
    return found.experiment_id


def _artifact_root(uri: str) -> str | None:
    if not uri.startswith("sqlite:///"):
        return None  # a server decides where artifacts go
    database = Path(uri.removeprefix("sqlite:///")).expanduser().resolve()
    return (database.parent / "mlartifacts").as_uri()


def _resumable(client: MlflowClient, run_id: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as e:
        if e.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        return False
    return run.info.lifecycle_stage == "active"


def _system_metrics(settings: MlflowConfig) -> bool:
    """System metrics need psutil; without it, warn and train on rather than fail."""
    if not settings.system_metrics:
        return False
    import importlib.util

    if importlib.util.find_spec("psutil") is None:
        _log.warning("mlflow.system_metrics is on but psutil is not installed: no CPU/GPU/"
                     "memory metrics for this run (pip install psutil, plus nvidia-ml-py on GPU)")
        return False
    return True


def _log_params(client: MlflowClient, run_id: str, params: Mapping[str, Scalar]) -> None:
    """Log params in batches, skipping those already on the run: MLflow refuses to change
    a param, and a resumed run logs its config again."""
    from mlflow.entities import Param

    values = {key: _param_value(value) for key, value in params.items()}
    logged = client.get_run(run_id).data.params
    changed = sorted(k for k, v in values.items() if k in logged and logged[k] != v)
    if changed:
        _log.warning("resumed run %s keeps its first values of %s (MLflow params cannot "
                     "change); config.yaml holds the values in effect now", run_id, changed)
    new = [Param(k, v) for k, v in values.items() if k not in logged]
    for start in range(0, len(new), PARAMS_PER_BATCH):
        client.log_batch(run_id, params=new[start : start + PARAMS_PER_BATCH])


def _param_value(value: Scalar) -> str:
    text = redact_text(str(value))
    if len(text) <= MAX_PARAM_LENGTH:
        return text
    return text[: MAX_PARAM_LENGTH - len(TRUNCATION_MARK)] + TRUNCATION_MARK
