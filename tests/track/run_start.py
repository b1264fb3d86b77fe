"""Start a tracked run the way pretraining does, from a PretrainConfig."""

from __future__ import annotations

from mpmae.track.registry import log_encoder
from mpmae.track.runs import start_run
from mpmae.train.config import PretrainConfig


def start_pretrain_run(cfg: PretrainConfig, **kwargs) -> str:
    return start_run(cfg.mlflow, experiment=cfg.experiment, config=cfg, model=cfg.model,
                     **kwargs)


def log_pretrain_encoder(release_dir, cfg: PretrainConfig, **kwargs) -> int | None:
    return log_encoder(release_dir, register_as=cfg.mlflow.register_as, model=cfg.model,
                       **kwargs)
