"""Start a tracked run the way pretraining does, from a PretrainConfig."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mpmae.storage import resolve
from mpmae.track.registry import log_encoder
from mpmae.track.runs import start_run
from mpmae.track.sink import TrackingSink
from mpmae.train.config import PretrainConfig


def start_pretrain_run(cfg: PretrainConfig, **kwargs) -> str:
    return start_run(cfg.mlflow, experiment=cfg.experiment, config=cfg, model=cfg.model,
                     **kwargs)


def log_pretrain_encoder(release_dir, cfg: PretrainConfig, **kwargs) -> int | None:
    return log_encoder(release_dir, register_as=cfg.mlflow.register_as, model=cfg.model,
                       **kwargs)


@contextmanager
def sink_of_active_run(spill_to: Path) -> Iterator[TrackingSink]:
    """Rank 0's :class:`TrackingSink` on the active run; on exit, everything it was given
    has been sent (nothing left for ``spill_to``)."""
    import mlflow

    sink = TrackingSink(mlflow.active_run().info.run_id, mlflow.get_tracking_uri())
    yield sink
    assert sink.close(resolve(spill_to)) is None
