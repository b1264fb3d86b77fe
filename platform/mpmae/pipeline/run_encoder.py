"""``mpmae evaluate RUN_NAME DATASET…`` of a finished run's encoder, on the run's own
storage, tracking server and cluster: the scores land in an evaluation run and, as
``downstream/…`` metrics, on the pretraining run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mpmae.config import ConfigError
from mpmae.data.geobench.errors import GeoBenchError
from mpmae.evaluate import EvaluateConfig, ResultRow, check_datasets, evaluate
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


def check_eval_after(run: PretrainConfig) -> None:
    """The run's ``eval`` section against its datasets, before any training: each one
    readable, scored by the protocol (the logistic probe also needs a valid split) and
    holding the bands the run's encoder will take. Mistakes are ConfigErrors on
    ``eval.…``."""
    settings = EvaluateConfig(protocol=run.eval.protocol, seeds=run.eval.seeds)
    try:
        check_datasets(list(run.eval.datasets), settings, run.model.pretext_set.input_bands)
    except GeoBenchError as e:
        raise ConfigError(str(e), "eval.datasets") from None
    except ConfigError as e:  # keyed on evaluate's own config: name the eval section's key
        raise ConfigError(e.message, f"eval.{e.key or 'datasets'}") from None
