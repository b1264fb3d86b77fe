"""Fixtures for the tracking tests: configs aimed at a shared SQLite store, a tiny encoder
release, and a real `mlflow server` whose artifacts land in a moto S3 bucket."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from mlflow_server import mlflow_server

from mpmae.config import override
from mpmae.train.config import PretrainConfig


@dataclass(frozen=True)
class TrackingServer:
    url: str
    bucket: str
    s3_client: object


@pytest.fixture(scope="session")
def sqlite_uri(tmp_path_factory) -> str:
    """One SQLite store for the session (creating one costs seconds); each test gets its
    own experiment in it."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def make_cfg(sqlite_uri, request, monkeypatch):
    """``make_cfg(**dotted_overrides)``: a PretrainConfig named after the test, tracking into
    the shared store. Ends any run the test left active and forgets the tracking URI."""
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", request.node.name)

    def make(**overrides) -> PretrainConfig:
        defaults = {"name": name, "mlflow.tracking_uri": sqlite_uri,
                    "mlflow.system_metrics": False, "mlflow.register_as": f"enc-{name}"}
        return override(PretrainConfig(), {**defaults, **overrides})

    yield make
    while mlflow.active_run():
        mlflow.end_run("KILLED")
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="session")
def release_dir(tmp_path_factory):
    """A real encoder release of an atto encoder with 12 Sentinel-2 inputs."""
    from mpmae.modalities import S2_INPUT_BANDS
    from mpmae.model import build_encoder, save_encoder

    metadata = {"input_bands": list(S2_INPUT_BANDS),
                "normalisation": {"mean": [1000.0] * 12, "std": [500.0] * 12}}
    return save_encoder(build_encoder("atto"), tmp_path_factory.mktemp("release") / "atto",
                        metadata=metadata)


@pytest.fixture(scope="module")
def tracking_server(s3_endpoint, tmp_path_factory):
    """``mlflow server`` with SQLite and ``--artifacts-destination s3://…`` on moto."""
    import boto3

    bucket = "mlflow-artifacts"
    client = boto3.client("s3", endpoint_url=s3_endpoint.endpoint_url, region_name="us-east-1",
                          aws_access_key_id=s3_endpoint.access_key_id,
                          aws_secret_access_key=s3_endpoint.secret_access_key)
    client.create_bucket(Bucket=bucket)
    env = {"MLFLOW_S3_ENDPOINT_URL": s3_endpoint.endpoint_url, **s3_endpoint.as_env()}
    with mlflow_server(tmp_path_factory.mktemp("server"), f"s3://{bucket}/mlflow", env) as url:
        yield TrackingServer(url, bucket, client)
