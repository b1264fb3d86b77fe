"""infra/local/fake_cluster.py: ray-cluster.yaml's worker types as a fake-multinode config
that Ray's validator accepts (the monitor validates the file exactly as written)."""

from __future__ import annotations

import pytest
import yaml
from infra_modules import load

fake_cluster = load("infra/local/fake_cluster.py")
GCS = "127.0.0.1:6390"


@pytest.fixture(scope="module")
def cluster() -> dict:
    return fake_cluster.load_cluster()


@pytest.fixture(scope="module")
def fake(cluster) -> dict:
    return fake_cluster.fake_config(cluster, gcs_address=GCS)


def test_ray_validator_accepts_it(fake):
    from ray.autoscaler._private.util import validate_config

    # Not prepare_config: it would merge the fake provider's example.yaml, which the wheel
    # lacks. The config must be complete as written.
    validate_config(fake)


def test_provider_and_every_field_the_fake_provider_needs(fake):
    assert fake["provider"]["type"] == "fake_multinode"
    assert fake["provider"]["gcs_address"] == GCS
    assert fake["provider"]["disable_node_updaters"] is True
    for key, empty in fake_cluster.EMPTY_FIELDS.items():
        assert fake[key] == empty, key


def test_head_keeps_the_real_heads_resources(cluster, fake):
    assert fake["head_node_type"] == "ray.head.default"
    head = fake["available_node_types"]["ray.head.default"]
    real = cluster["available_node_types"][cluster["head_node_type"]]["resources"]
    assert head["resources"] == real
    assert head["max_workers"] == 0
    assert fake_cluster.head_start_flags(cluster) == [
        f"--num-cpus={real['CPU']}", f"--num-gpus={real.get('GPU', 0)}"]


def test_worker_types_keep_accelerator_gpu_and_drop_gpu(cluster, fake):
    real_workers = fake_cluster.worker_types(cluster)
    fake_types = fake["available_node_types"]
    assert set(fake_types) == {"ray.head.default", *real_workers}
    for name, real in real_workers.items():
        resources = fake_types[name]["resources"]
        assert "GPU" not in resources, name  # fake nodes have no CUDA
        assert resources["accelerator_gpu"] == real["resources"]["accelerator_gpu"]
        assert resources["CPU"] == 1
        assert all(type(v) is int for v in resources.values()), resources
        assert fake_types[name]["min_workers"] == 0
        assert 1 <= fake_types[name]["max_workers"] <= 2
    assert fake["max_workers"] == sum(fake_types[n]["max_workers"] for n in real_workers)


def test_idle_timeout_from_the_cluster_unless_given(cluster, fake):
    assert fake["idle_timeout_minutes"] == cluster["idle_timeout_minutes"]
    quick = fake_cluster.fake_config(cluster, gcs_address=GCS, idle_timeout_minutes=0.1)
    assert quick["idle_timeout_minutes"] == 0.1


def test_cli_writes_the_config(tmp_path, fake, capsys):
    out = tmp_path / "fake.yaml"
    assert fake_cluster.main(["--gcs-address", GCS, "--out", str(out)]) == 0
    assert yaml.safe_load(out.read_text()) == fake
    assert "RAY_FAKE_CLUSTER=1 ray start --head --port=6390" in capsys.readouterr().out
