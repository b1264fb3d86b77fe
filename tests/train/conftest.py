"""Tiny pretraining runs on a real local Ray: 16px tiles, two CPU workers, a few steps."""

from __future__ import annotations

import pytest

from mpmae.config import load_config
from mpmae.train.config import PretrainConfig


@pytest.fixture
def mpmae_home(tmp_path, monkeypatch):
    """Embedded defaults (cache, SQLite MLflow, runs) go to a fresh folder per test."""
    monkeypatch.setenv("MPMAE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path / "home"


TINY = [
    "model.img_size=16", "train.batch_size=4", "train.max_steps=4", "train.log_every=1",
    "train.checkpoint_every=2", "train.figure_every=2", "scaling.num_workers=2",
    "scaling.cpus_per_worker=0.5", "scaling.data_cpus=0.5", "mlflow.system_metrics=false",
]


@pytest.fixture
def tiny_config(small_world, tmp_path, mpmae_home):
    """``tiny_config(*overrides)`` → a PretrainConfig on the shared 16px world."""

    def make(*overrides: str) -> PretrainConfig:
        base = [f"data.uri={small_world}", f"storage.root={tmp_path / 'runs'}",
                f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}", "run_name=t"]
        return load_config(PretrainConfig, None, [*base, *TINY, *overrides])

    return make


@pytest.fixture
def tiny_args():
    """The tiny settings as ``--set`` arguments for the CLI."""
    return [arg for item in TINY for arg in ("--set", item)]


@pytest.fixture
def mlflow_runs():
    """``mlflow_runs(cfg)`` → (client, runs of the config's experiment)."""
    import mlflow

    def find(cfg: PretrainConfig):
        client = mlflow.MlflowClient(cfg.mlflow.tracking_uri)
        experiment = client.get_experiment_by_name(cfg.mlflow.experiment or cfg.name)
        return client, client.search_runs([experiment.experiment_id])

    return find
