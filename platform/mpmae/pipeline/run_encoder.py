"""``mpmae evaluate RUN_NAME DATASET…`` of a finished run's encoder, on the run's own
storage, tracking server and cluster: the scores land in an evaluation run and, as
``downstream/…`` metrics, on the pretraining run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mpmae.evaluate import EvaluateConfig, ResultRow, evaluate
from mpmae.track.config import MlflowConfig
from mpmae.train.config import PretrainConfig


def evaluate_run_encoder(run: PretrainConfig, datasets: list[str],
                         progress: Callable[[str], None], **recipe: Any) -> list[ResultRow]:
    """The encoder of ``run`` (its configuration as resolved: run name, storage root and
    tracking URI filled in) scored on ``datasets``; ``recipe``: ``EvaluateConfig``'s keys
    (protocol, seeds, partitions, …)."""
    settings = EvaluateConfig(
        **recipe, storage=run.storage, address=run.scaling.address,
        mlflow=MlflowConfig(tracking_uri=run.mlflow.tracking_uri, system_metrics=False))
    settings.validate()
    return evaluate(run.run_name, datasets, settings, progress)
