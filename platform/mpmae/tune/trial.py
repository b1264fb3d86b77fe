"""One Tune trial: a full Ray Train pretraining run whose rank-0 reports go to Tune.

The trial's run lives in ``<sweep>/trials/<key>/`` exactly like a ``mpmae pretrain`` run
(checkpoints, run.json, config.yaml, encoder/), so a trial that runs again (a resumed
sweep, a failed node) re-fits the same TorchTrainer and continues from its latest
checkpoint, logging into the same nested MLflow run. A trial that trains to its end
records it (:mod:`mpmae.tune.trial_record`).
"""

from __future__ import annotations

from typing import Any

from mpmae.config import from_dict
from mpmae.errors import Preempted
from mpmae.train.config import PretrainConfig

SWEEP_TAG = "mpmae.sweep"
TRIAL_TAG = "mpmae.trial_id"
PARENT_TAG = "mlflow.parentRunId"  # what MLflow's UI nests runs by


def run_trial(params: dict[str, Any], *, base: dict, objective: dict, sweep_name: str,
              parent_run_id: str) -> None:
    """Tune's trainable: ``params["trial"]`` is the trial's key and drawn values
    (:func:`mpmae.tune.search_space.plan_trials`), ``base`` the sweep's resolved
    pretraining config and ``objective`` its objective section (as plain data). A trial
    that trains to its last step is then scored on the objective's dataset, if it names
    one (:mod:`mpmae.tune.objective`)."""
    from ray.tune.integration.ray_train import TuneReportCallback

    from mpmae.storage import retry_counts
    from mpmae.track.run_folder import tracked_run
    from mpmae.train.launch import RunLocations, build_trainer, open_dataset
    from mpmae.tune.objective import ObjectiveConfig, score_trial
    from mpmae.tune.search_space import KEY, trial_config
    from mpmae.tune.trial_record import write_record

    trial_id = params["trial"][KEY]
    cfg = trial_config(from_dict(PretrainConfig, base), params["trial"])
    where = RunLocations.of(cfg)  # the trial's own process: once, here
    retries_before = retry_counts()
    dataset = open_dataset(cfg, where.data, progress=_quiet)
    tags = {PARENT_TAG: parent_run_id, SWEEP_TAG: sweep_name, TRIAL_TAG: trial_id}
    try:
        with tracked_run(where.runs.join(trial_id), cfg.mlflow, experiment=cfg.experiment,
                         name=trial_id, config=cfg, model=cfg.model, tags=tags) as run:
            trainer, _ = build_trainer(cfg, dataset, where.runs, run, [TuneReportCallback()],
                                       _quiet, retries_before)
            # Returns only once the loop reached its last step: a trial ASHA stops, or one
            # that fails, raises out of here. (Its metrics may lag the last report.)
            result = _fit(trainer)
            if (result.metrics or {}).get("preempted"):  # its MLflow run ends KILLED
                raise Preempted(f"trial {trial_id} preempted")
    except Preempted:
        return  # checkpointed at its step: no record, no score; the sweep's resume runs on
    goal = from_dict(ObjectiveConfig, objective)
    # After the trial's run has ended, as `mpmae pretrain` evaluates its final encoder.
    if goal.dataset:
        score_trial(goal, cfg, run.folder)
    write_record(run.folder, "completed", result.metrics or {})


def _fit(trainer):
    """``trainer.fit()``; a preemption whose checkpoint could not be written fails the
    workers with our Preempted (it names the step a resume starts from), raised as such."""
    from ray.train import TrainingFailedError

    from mpmae.cluster.task_result import our_error

    try:
        return trainer.fit()
    except TrainingFailedError as e:
        if isinstance(ours := our_error(e), Preempted):
            raise ours from None
        raise


def _quiet(_: str) -> None:
    """Tune prints the sweep's progress; a trial's own messages would interleave with it."""
