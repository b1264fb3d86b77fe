"""Shared fixtures: a real S3 endpoint (moto server), a real local Ray, a small dataset, tiny
pretraining runs on it."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest

from mpmae.config import load_config
from mpmae.storage import StorageOptions

if TYPE_CHECKING:  # imported where used: it loads torch, which most tests here never need
    from mpmae.train.config import PretrainConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """A moto S3 server on a free loopback port; yields StorageOptions pointing at it."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield StorageOptions(endpoint_url=f"http://127.0.0.1:{port}", region="us-east-1",
                         access_key_id="testing-key", secret_access_key="testing-secret")
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint, request):
    """A fresh, empty bucket on the moto endpoint; yields its s3:// URI."""
    import boto3

    name = "b-" + request.node.name.lower().replace("_", "-")[:40].strip("-[]")
    name = "".join(c if c.isalnum() or c == "-" else "-" for c in name)
    client = boto3.client("s3", endpoint_url=s3_endpoint.endpoint_url, region_name="us-east-1",
                          aws_access_key_id=s3_endpoint.access_key_id,
                          aws_secret_access_key=s3_endpoint.secret_access_key)
    client.create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray instance shared by the tests that need one (2 CPUs, no dashboard)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    """A 96-tile synthetic world of 16px tiles, three splits, 2+ train shards."""
    from mpmae.data.sources.synth import synthesize

    root = tmp_path_factory.mktemp("world")
    synthesize(str(root), tiles=96, size=16, seed=3, downstream_tiles=32, tiles_per_shard=32,
               progress=lambda _: None)
    return root


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
    """``tiny_config(*overrides)`` → a tiny pretraining run's PretrainConfig (16px tiles, two
    CPU workers, a few steps) on the shared world."""

    def make(*overrides: str) -> PretrainConfig:
        from mpmae.train.config import PretrainConfig

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
