"""Tiny sweeps on the shared 16px world: 1 CPU worker per trial, a few steps each."""

from __future__ import annotations

import pytest

from mpmae.config import load_config
from mpmae.tune.config import TuneConfig

# Two trials of 0.1 + 0.4 CPU on the 2-CPU fixture leave one whole CPU: Ray Data read
# tasks each ask for a full CPU, and fractions left over would starve them.
TINY_SWEEP = [
    "search.pretext=[S2,[sentinel2,aster]]", "scheduler.grace_period=2",
    "pretrain.model.img_size=16", "pretrain.train.batch_size=4", "pretrain.train.max_steps=4",
    "pretrain.train.log_every=1", "pretrain.train.checkpoint_every=2",
    "pretrain.train.probe_every=2", "pretrain.train.figure_every=0",
    "pretrain.scaling.num_workers=1", "pretrain.scaling.cpus_per_worker=0.4",
    "pretrain.scaling.data_cpus=1", "pretrain.mlflow.system_metrics=false",
]


@pytest.fixture
def sweep_args(small_world, tmp_path, monkeypatch):
    """The tiny sweep as ``--set`` items, everything under ``tmp_path``."""
    monkeypatch.setenv("MPMAE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return [f"pretrain.data.uri={small_world}", f"pretrain.storage.root={tmp_path / 'runs'}",
            f"pretrain.mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
            "sweep_name=s", *TINY_SWEEP]


@pytest.fixture
def tiny_sweep(sweep_args):
    """``tiny_sweep(*overrides)`` → a TuneConfig of two tiny trials."""

    def make(*overrides: str) -> TuneConfig:
        return load_config(TuneConfig, None, [*sweep_args, *overrides])

    return make


@pytest.fixture
def sweep_runs():
    """``sweep_runs(cfg)`` → (client, parent runs, trial runs) of the sweep's experiment."""
    import mlflow

    def find(cfg: TuneConfig):
        client = mlflow.MlflowClient(cfg.pretrain.mlflow.tracking_uri)
        experiment = client.get_experiment_by_name(cfg.name)
        runs = client.search_runs([experiment.experiment_id])
        parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        return client, parents, trials

    return find


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: minutes long (the autoscaling sweep); deselect with -m 'not slow'")
