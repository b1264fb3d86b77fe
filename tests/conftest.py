"""Shared fixtures: a real S3 endpoint (moto server), a real local Ray, a small dataset."""

from __future__ import annotations

import socket

import pytest

from mpmae.storage import StorageOptions


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
