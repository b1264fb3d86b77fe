"""One Tune trial: a full Ray Train pretraining run whose rank-0 reports go to Tune.

The trial's run lives in ``<sweep>/trials/<trial id>/`` exactly like a ``mpmae pretrain``
run (checkpoints, run.json, config.yaml, encoder/), so a trial that Tune restarts (a
resumed sweep, a failed node) re-fits the same TorchTrainer and continues from its latest
checkpoint, logging into the same nested MLflow run.
"""

from __future__ import annotations

from typing import Any

from mpmae.config import from_dict, override
from mpmae.train.config import PretrainConfig

SWEEP_TAG = "mpmae.sweep"
TRIAL_TAG = "mpmae.trial_id"
PARENT_TAG = "mlflow.parentRunId"  # what MLflow's UI nests runs by


def run_trial(params: dict[str, Any], *, base: dict, objective: dict, sweep_name: str,
              parent_run_id: str) -> None:
    """Tune's trainable: ``params`` are the trial's drawn values, ``base`` the sweep's
    resolved pretraining config and ``objective`` its objective section (as plain data).
    A trial that trains to its last step is then scored on the objective's dataset, if
    it names one (:mod:`mpmae.tune.objective`)."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from mpmae.storage import resolve
    from mpmae.track.run_folder import tracked_run
    from mpmae.train.launch import build_trainer, open_dataset
    from mpmae.tune.objective import ObjectiveConfig, score_trial
    from mpmae.tune.search_space import trial_config

    trial_id = tune.get_context().get_trial_id()
    cfg = override(trial_config(from_dict(PretrainConfig, base), params),
                   {"run_name": trial_id})
    dataset = open_dataset(cfg, progress=_quiet)
    root = resolve(cfg.storage.root, cfg.storage.options())
    tags = {PARENT_TAG: parent_run_id, SWEEP_TAG: sweep_name, TRIAL_TAG: trial_id}
    with tracked_run(root.join(trial_id), cfg.mlflow, experiment=cfg.experiment,
                     name=trial_id, config=cfg, model=cfg.model, tags=tags) as run:
        trainer, total = build_trainer(cfg, dataset, root, run, [TuneReportCallback()],
                                       _quiet)
        result = trainer.fit()
    goal = from_dict(ObjectiveConfig, objective)
    # After the trial's run has ended, as `mpmae pretrain` evaluates its final encoder.
    if goal.dataset and (result.metrics or {}).get("step") == total:
        score_trial(goal, cfg, run.folder)


def _quiet(_: str) -> None:
    """Tune prints the sweep's progress; a trial's own messages would interleave with it."""
