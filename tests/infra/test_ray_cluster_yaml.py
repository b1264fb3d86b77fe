"""ray-cluster.yaml: Ray's own validator accepts it, and it says what docs/cluster.md promises
(a head that trains nothing, GPU workers from zero, idle timeout, pinned install, token auth)."""

from __future__ import annotations

import re

import pytest
import yaml
from infra_modules import ROOT

CLUSTER_YAML = ROOT / "ray-cluster.yaml"


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


@pytest.fixture(scope="module")
def workers(cluster) -> dict:
    head = cluster["head_node_type"]
    return {k: v for k, v in cluster["available_node_types"].items() if k != head}


def project_version() -> str:
    return re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)[1]


def test_ray_validator_accepts_it(cluster):
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(cluster))


def test_node_type_resources_are_integers(cluster):
    for name, node_type in cluster["available_node_types"].items():
        for resource, amount in node_type["resources"].items():
            assert type(amount) is int, f"{name}.{resource} = {amount!r}: Ray wants integers"


def test_head_has_cpus_for_drivers_but_nothing_to_train_on(cluster):
    resources = cluster["available_node_types"][cluster["head_node_type"]]["resources"]
    assert resources.get("GPU", 0) == 0
    assert "accelerator_gpu" not in resources
    assert resources["CPU"] >= 1  # Tune trial functions and Ray Data need a few CPUs


def test_gpu_worker_types_scale_from_zero(cluster, workers):
    assert workers, "no worker types"
    for name, node_type in workers.items():
        assert node_type["min_workers"] == 0, name
        assert node_type["max_workers"] >= 1, name
        gpus = node_type["resources"]["GPU"]
        assert gpus >= 1, name
        # The custom resource stands in for GPUs on the fake cluster: same count.
        assert node_type["resources"]["accelerator_gpu"] == gpus, name
    assert sum(w["max_workers"] for w in workers.values()) <= cluster["max_workers"]


def test_idle_nodes_are_removed(cluster):
    assert 0 < cluster["idle_timeout_minutes"] <= 60


def test_setup_installs_this_project_version_with_pinned_dependencies(cluster):
    setup = " ".join(cluster["setup_commands"])
    assert f"mpmae-{project_version()}-py3-none-any.whl" in setup, (
        "ray-cluster.yaml installs another mpmae version than pyproject.toml's")
    assert "-c ~/mpmae-node/constraints.txt" in setup


def test_every_node_starts_ray_with_token_auth(cluster):
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in cluster[key] if "ray start" in c]
        assert starts, key
        for command in starts:
            assert "RAY_AUTH_MODE=token ray start" in command, command
    assert "disabled" not in CLUSTER_YAML.read_text()
    assert cluster["file_mounts"]["~/.ray/auth_token"] == "~/.mpmae/cluster/auth_token"


def test_ray_start_sees_the_node_env_file(cluster):
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = next(c for c in cluster[key] if "ray start" in c)
        assert start.startswith("set -a && . ~/mpmae-node/mpmae.env && set +a")
    assert cluster["file_mounts"]["~/mpmae-node"] == "~/.mpmae/cluster/node"


def test_image_is_pinned_and_matches_the_ray_version(cluster):
    image = cluster["docker"]["image"]
    name, _, tag = image.rpartition(":")
    assert name and tag and tag != "latest", image
    ray_pin = re.search(r"^ray==(\S+)$", (ROOT / "infra/docker/constraints.txt").read_text(),
                        re.M)[1]
    assert tag.startswith(f"{ray_pin}-py311"), (image, ray_pin)


def test_no_credentials_in_the_file():
    text = CLUSTER_YAML.read_text()
    assert not re.search(r"AKIA[0-9A-Z]{16}", text)
    assert not re.search(r"(?i)(secret_access_key|password)\s*[:=]", text)


def test_ssh_is_not_open_to_the_world_and_ships_a_placeholder(cluster):
    group = cluster["provider"]["security_group"]
    assert group["GroupName"]
    cidrs = [r["CidrIp"] for rule in group["IpPermissions"] for r in rule["IpRanges"]]
    assert cidrs == ["SET-YOUR-SSH-CIDR"]  # infra/aws/prepare.py refuses it until set
    assert not [p for p in group["IpPermissions"] if "Ipv6Ranges" in p or "PrefixListIds" in p]


def test_nodes_use_least_privilege_instance_profiles(cluster, workers):
    head = cluster["available_node_types"][cluster["head_node_type"]]
    assert head["node_config"]["IamInstanceProfile"] == {"Name": "mpmae-head"}
    for name, node_type in workers.items():
        assert node_type["node_config"]["IamInstanceProfile"] == {"Name": "mpmae-worker"}, name
    # ray up's default role has AmazonEC2FullAccess and AmazonS3FullAccess.
    assert "ray-autoscaler-v1" not in CLUSTER_YAML.read_text()
