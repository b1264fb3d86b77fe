"""``mpmae tune`` on the driver: one MLflow parent run, a Ray Tune sweep of pretraining
trials, then a results table, a figure and the best encoder registered.

A sweep lives in ``<storage.root>/<sweep_name>/``: ``run.json`` (the parent MLflow run id,
so a re-run re-attaches), ``config.yaml``, ``tune/`` (Ray Tune's own experiment folder,
never read back: it is pickled) and ``trials/<key>/`` (each trial's pretraining run and
its ``trial.json`` record once it ended). Re-running the same command with the same sweep
name finishes what is left: the trials not yet recorded as done run, on from their own
checkpoints where they have some (:mod:`mpmae.tune.trial_record`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpmae.cluster.connect import connect
from mpmae.config import override, run_stamp, to_dict
from mpmae.errors import Preempted
from mpmae.modalities import resolve_pretext
from mpmae.storage import Location
from mpmae.track.run_folder import CONFIG_FILE, read_run_file, tracked_run
from mpmae.train.config import PretrainConfig
from mpmae.train.launch import located, open_dataset
from mpmae.train.preemption import notice_on_signals
from mpmae.train.step_plan import plan_steps
from mpmae.tune.config import TuneConfig
from mpmae.tune.objective import PROBE, objective_name, read_score
from mpmae.tune.results import best_row, probe_figure, to_csv, trial_row
from mpmae.tune.search_space import KEY, param_space, plan_trials
from mpmae.tune.trial import SWEEP_TAG
from mpmae.tune.trial_record import DONE, read_record, write_record

TUNE_DIR = "tune"
TRIALS_DIR = "trials"
RESULTS_DIR = "results"
METRIC, MODE, TIME_ATTR = PROBE, "max", "step"  # what ASHA stops trials on
VERSION_TAG = "mpmae.best_model_version"
TUNE_SIGINT = "TUNE_DISABLE_SIGINT_HANDLER"
OBJECTIVE_TAG = "mpmae.objective"  # the name of the parent run's best_objective
# MLflow run statuses for trials that did not finish on their own.
RUN_STATUS = {"completed": "FINISHED", "stopped": "KILLED", "error": "FAILED"}


@dataclass
class SweepResult:
    sweep_name: str
    sweep_dir: str
    mlflow_run_id: str
    objective: str  # what ranked the trials (rows' objective_value)
    rows: list[dict[str, Any]]
    best: dict[str, Any] | None
    model_version: str | None


def sweep(cfg: TuneConfig, progress=print) -> SweepResult:
    """Run (or resume) the sweep as configured."""
    import ray

    pretrain, where = located(cfg.pretrain)
    cfg = _resolved(cfg, pretrain)
    dataset = open_dataset(cfg.pretrain, where.data, progress)
    for spec in cfg.search.pretext:  # fail now, not in the trial that draws it
        dataset.require(resolve_pretext(spec))
    objective = objective_name(cfg.objective,
                               [resolve_pretext(p).input_bands for p in cfg.search.pretext])
    with _parent_run(cfg, where.runs.join(cfg.sweep_name), objective) as parent:
        sweep_dir = parent.folder
        progress(("resuming" if parent.resumed else "starting") + f" sweep {parent.name} in "
                 f"{sweep_dir.uri}")
        started_ray = connect(cfg.pretrain.scaling.address)
        try:
            total = plan_steps(dataset.manifest.split_tiles(cfg.pretrain.data.split),
                               cfg.pretrain.train.batch_size, cfg.pretrain.train.accumulation,
                               cfg.pretrain.scaling.num_workers, cfg.pretrain.optim.epochs,
                               cfg.pretrain.train.max_steps)[1]
            trials_dir = sweep_dir.join(TRIALS_DIR)
            trials = plan_trials(cfg)
            done = {t[KEY]: r for t in trials if (r := read_record(trials_dir.join(t[KEY])))
                    and r["status"] in DONE}
            todo = [t for t in trials if t[KEY] not in done]
            if done:
                progress(f"{len(done)} of {len(trials)} trial(s) already ended; running "
                         f"the other {len(todo)}")
            results = []
            if todo:
                with notice_on_signals(*[trials_dir.join(t[KEY]) for t in todo]) as notice, \
                        _signals_left_to_us():
                    grid = _tuner(cfg, sweep_dir, parent.mlflow_run_id, total, todo,
                                  progress).fit()
                if grid.num_terminated + grid.num_errors < len(grid):
                    raise KeyboardInterrupt  # Tune stopped on a signal
                results = _record(grid, trials_dir, total)
                _raise_if_preempted(grid, notice.given)
            rows = _rows(trials, {**done, **dict(results)}, trials_dir, objective)
            best, version = _publish(cfg, rows, sweep_dir)
        finally:
            if started_ray:
                ray.shutdown()
    result = SweepResult(cfg.sweep_name, sweep_dir.uri, parent.mlflow_run_id, objective, rows,
                         best, version)
    progress(_summary(result))
    return result


def _resolved(cfg: TuneConfig, pretrain: PretrainConfig) -> TuneConfig:
    """With ``pretrain``, the pretraining section :func:`located`: the sweep named, its
    trials' experiment set and the objective's dataset an absolute path (each trial runs
    in a working directory of its own)."""
    pretrain = override(pretrain, {
        "run_name": "", "mlflow.experiment": cfg.pretrain.mlflow.experiment or cfg.name})
    dataset = cfg.objective.dataset and str(Path(cfg.objective.dataset).expanduser().resolve())
    return override(cfg, {"sweep_name": cfg.sweep_name or f"{cfg.name}-{run_stamp()}",
                          "pretrain": to_dict(pretrain), "objective.dataset": dataset})


def _parent_run(cfg: TuneConfig, sweep_dir: Location, objective: str):
    """The sweep's MLflow run and folder (a re-run re-attaches), with the sweep config as
    params and tagged with every pretext set searched and the objective's name."""
    labels = ",".join(resolve_pretext(p).name for p in cfg.search.pretext)
    return tracked_run(sweep_dir, cfg.pretrain.mlflow, experiment=cfg.pretrain.experiment,
                       name=cfg.sweep_name, config=cfg, model=cfg.pretrain.model,
                       tags={SWEEP_TAG: cfg.sweep_name, "mpmae.pretext": labels,
                             OBJECTIVE_TAG: objective})


def _trial_base(cfg: TuneConfig, sweep_dir: Location) -> PretrainConfig:
    """Every trial's starting config: runs under the sweep folder, nothing registered
    (the sweep registers only its best encoder)."""
    return override(cfg.pretrain, {"storage.root": sweep_dir.join(TRIALS_DIR).uri,
                                   "mlflow.register_as": ""})


def _tuner(cfg: TuneConfig, sweep_dir: Location, parent_id: str, total: int,
           trials: list[dict[str, Any]], progress):
    """A fresh Tuner over ``trials`` (a resumed sweep passes the ones left to run)."""
    from ray import tune

    from mpmae.tune.trial import run_trial

    fs = sweep_dir.fs if sweep_dir.is_s3 else None
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, base=to_dict(_trial_base(cfg, sweep_dir)),
                             objective=to_dict(cfg.objective), sweep_name=cfg.sweep_name,
                             parent_run_id=parent_id),
        {"CPU": cfg.trial_cpus})
    return tune.Tuner(
        trainable,
        param_space=param_space(trials),
        tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, scheduler=_scheduler(cfg, total),
                                    max_concurrent_trials=_concurrency(cfg, len(trials),
                                                                       progress)),
        run_config=tune.RunConfig(name=TUNE_DIR, storage_path=sweep_dir.path,
                                  storage_filesystem=fs),
    )


def _scheduler(cfg: TuneConfig, total: int):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    s = cfg.scheduler
    if s.kind == "none":
        return FIFOScheduler()
    # A trial at its last step finishes on its own (stop_last_trials=False): stopped
    # there, it would lose what follows its last report, the encoder export and the
    # objective's scoring.
    return ASHAScheduler(time_attr=TIME_ATTR, max_t=total,
                         grace_period=min(s.grace_period, total),
                         reduction_factor=s.reduction_factor, stop_last_trials=False)


def _concurrency(cfg: TuneConfig, planned: int, progress) -> int:
    from mpmae.tune.resources import cluster_capacity, concurrent_trials, trial_demand

    if cfg.max_concurrent_trials:
        n = min(cfg.max_concurrent_trials, planned)
    else:
        n = concurrent_trials(trial_demand(cfg), cluster_capacity(cfg.cluster_config),
                              cfg.pretrain.scaling.data_cpus, planned)
    progress(f"{planned} trial(s), up to {n} at once")
    return n


@contextmanager
def _signals_left_to_us() -> Iterator[None]:
    """Tune's own SIGINT handler stops trials without a checkpoint at their step: off while
    our preemption handler is in force (TUNE_DISABLE_SIGINT_HANDLER, read at fit time)."""
    before = os.environ.get(TUNE_SIGINT)
    os.environ[TUNE_SIGINT] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(TUNE_SIGINT, None)
        else:
            os.environ[TUNE_SIGINT] = before


def _preempted(result) -> bool:
    return bool((result.metrics or {}).get("preempted"))


def _raise_if_preempted(grid, signalled: bool) -> None:
    stopped = sum(_preempted(result) for result in grid)
    if signalled or stopped:
        # A trial Tune starts after the notice finds it too and stops at its first step.
        raise Preempted(f"sweep preempted: {stopped} trial(s) checkpointed at their current "
                        "step; run the same command to resume")


def _record(grid, trials_dir: Location, total: int) -> list[tuple[str, dict[str, Any]]]:
    """Each result's record (key, record), written with what Tune saw last: a completed
    trial wrote its own (in case this driver dies), stopped and failed ones cannot. A
    preempted trial gets none: the sweep's resume runs it on from its checkpoint."""
    out = []
    for result in grid:
        if _preempted(result):
            continue
        key = result.config["trial"][KEY]
        metrics = result.metrics or {}
        status = "error" if result.error else (
            "completed" if metrics.get(TIME_ATTR) == total else "stopped")
        out.append((key, write_record(trials_dir.join(key), status, metrics)))
    return out


def _rows(trials: list[dict[str, Any]], records: dict[str, dict[str, Any]],
          trials_dir: Location, objective: str) -> list[dict[str, Any]]:
    rows = []
    for trial in trials:
        key, record = trial[KEY], records[trial[KEY]]
        metrics = {**record["metrics"], "trial_id": key}
        run_id = read_run_file(trials_dir.join(key)).get("mlflow_run_id", "")
        rows.append(trial_row(trial, metrics, record["status"], run_id, objective,
                              _score(metrics, trials_dir, key, record["status"], objective)))
    return rows


def _score(metrics: dict[str, Any], trials_dir: Location, trial_id: str, status: str,
           objective: str) -> float | None:
    """The trial's objective value: its last probe, or the score a completed trial
    recorded in its folder."""
    if objective == PROBE:
        return metrics.get(PROBE)
    if status != "completed" or not trial_id:
        return None
    return read_score(trials_dir.join(trial_id), objective)


def _publish(cfg: TuneConfig, rows: list[dict[str, Any]],
             sweep_dir: Location) -> tuple[dict[str, Any] | None, str | None]:
    """Results table and figure on the parent run, trial runs closed, best encoder
    registered (once: a re-run of a finished sweep does not register it again)."""
    import mlflow

    client = mlflow.MlflowClient()
    mlflow.log_text(to_csv(rows), f"{RESULTS_DIR}/trials.csv")
    with tempfile.TemporaryDirectory() as tmp:
        figure = Path(tmp) / "probe_by_pretext.png"
        figure.write_bytes(probe_figure(rows))
        mlflow.log_artifact(str(figure), RESULTS_DIR)
    for row in rows:
        if row["mlflow_run_id"] and row["status"] != "completed":
            client.set_terminated(row["mlflow_run_id"], RUN_STATUS[row["status"]])
    best = best_row(rows)
    if best is None:
        return None, None
    mlflow.log_metrics({"best_objective": best["objective_value"],
                        "best_probe_accuracy": best["probe_accuracy"]})
    mlflow.set_tag("mpmae.best_trial", best["trial_id"])
    run = client.get_run(mlflow.active_run().info.run_id)
    version = run.data.tags.get(VERSION_TAG)
    if version is None and cfg.register_best and cfg.pretrain.mlflow.register_as:
        version = _register_best(cfg, sweep_dir.join(TRIALS_DIR, best["trial_id"]))
        if version is not None:  # None: the server was away (log_encoder warned)
            mlflow.set_tag(VERSION_TAG, version)
    return best, version


def _register_best(cfg: TuneConfig, trial_dir: Location) -> str | None:
    """Log the best trial's encoder release on the sweep run and register it; its model
    version, or None when the tracking server did not answer."""
    from mpmae.config import load_config
    from mpmae.model.release import RELEASE_DIR
    from mpmae.track.registry import log_encoder

    release = trial_dir.join(RELEASE_DIR)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / CONFIG_FILE).write_bytes(trial_dir.join(CONFIG_FILE).read_bytes())
        trial_cfg = load_config(PretrainConfig, Path(tmp) / CONFIG_FILE, [])
        folder = release.download(Path(tmp) / RELEASE_DIR)
        version = log_encoder(folder, register_as=cfg.pretrain.mlflow.register_as,
                              model=trial_cfg.model)
        return None if version is None else str(version)


def _summary(r: SweepResult) -> str:
    lines = [f"done: sweep {r.sweep_name}, {len(r.rows)} trial(s); MLflow run {r.mlflow_run_id}"]
    lines.append(f"  objective (ranks the trials): {r.objective}")
    for row in r.rows:
        value = row["objective_value"]
        score = "" if r.objective == PROBE else (
            f" objective {value:.3f}" if value is not None else " objective — (not scored)")
        lines.append(f"  {row['trial_id']} {row['pretext']:<16} {row['loss_weighting']:<11} "
                     f"lr {row['lr']:.2g} mask {row['mask_ratio']:.2f} seed {row['seed']} "
                     f"{row['status']:<9} probe {row['probe_accuracy']}{score}")
    if r.best:
        registered = f", registered as version {r.model_version}" if r.model_version else ""
        lines.append(f"  best: {r.best['trial_id']} ({r.best['pretext']}) {r.objective} "
                     f"{r.best['objective_value']:.3f}{registered}")
    lines.append(f"  resume or re-summarise: mpmae tune … --set sweep_name={r.sweep_name}")
    return "\n".join(lines)
