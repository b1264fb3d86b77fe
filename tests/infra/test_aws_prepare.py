"""infra/aws/prepare.py: it writes every file ray-cluster.yaml mounts, keeps the token, puts
only the intended variables (shell-safe) into the nodes' env file, and writes nothing while
ray-cluster.yaml's SSH rule holds its placeholder or opens SSH to the world."""

from __future__ import annotations

import stat
import subprocess
import zipfile

import pytest
import yaml
from infra_modules import ROOT, load

prepare = load("infra/aws/prepare.py")


def cluster_with_ssh_from(cidr: str) -> dict:
    """ray-cluster.yaml as a user would have edited it: SSH from ``cidr``."""
    cluster = yaml.safe_load((ROOT / "ray-cluster.yaml").read_text())
    (rule,) = cluster["provider"]["security_group"]["IpPermissions"]
    rule["IpRanges"] = [{"CidrIp": cidr}]
    return cluster


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("cluster")
    env = {"MLFLOW_TRACKING_URI": "http://mlflow.internal:5000", "AWS_DEFAULT_REGION": "eu-west-1",
           "AWS_SECRET_ACCESS_KEY": "not-for-the-nodes", "MPMAE_HOME": "/home/me/cache"}
    prepare.prepare(out, env, cluster_with_ssh_from("198.51.100.7/32"))
    return out


def test_the_shipped_placeholder_is_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "cluster"
    assert prepare.main(["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("prepare.py: error: ray-cluster.yaml: provider.security_group")
    assert "SET-YOUR-SSH-CIDR" in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("cidr,says", [("0.0.0.0/0", "whole internet"),
                                       ("::/0", "whole internet"),
                                       ("my-laptop", "not a CIDR")])
def test_world_open_or_malformed_ssh_is_refused(tmp_path, cidr, says):
    with pytest.raises(prepare.AccessError, match=says):
        prepare.prepare(tmp_path / "cluster", {}, cluster_with_ssh_from(cidr))
    assert not (tmp_path / "cluster").exists()


def test_every_file_mount_source_exists(prepared):
    cluster = yaml.safe_load((ROOT / "ray-cluster.yaml").read_text())
    default = str(prepare.DEFAULT_OUT)
    for local in cluster["file_mounts"].values():
        assert local.startswith(default), local
        assert (prepared / local.removeprefix(default).lstrip("/")).exists(), local


def test_the_wheel_that_setup_installs_is_there(prepared):
    cluster = yaml.safe_load((ROOT / "ray-cluster.yaml").read_text())
    wheel = next(w for w in " ".join(cluster["setup_commands"]).split() if w.endswith(".whl"))
    path = prepared / "node" / wheel.removeprefix("~/mpmae-node/")
    with zipfile.ZipFile(path) as built:
        assert {"mpmae/__init__.py", "mpmae/cluster/submit.py"} <= set(built.namelist())
    assert (prepared / "node" / "constraints.txt").read_text() == (
        ROOT / "infra/docker/constraints.txt").read_text()


def test_token_is_private_and_kept(prepared):
    token = prepared / "auth_token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert stat.S_IMODE(prepared.stat().st_mode) == 0o700
    before = token.read_text()
    assert len(before) == 64
    assert prepare.ensure_token(token) is False
    assert token.read_text() == before


def test_env_file_holds_only_node_settings(prepared):
    env_file = prepared / "node" / "mpmae.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    text = env_file.read_text()
    assert "MLFLOW_TRACKING_URI=http://mlflow.internal:5000" in text
    assert "AWS_DEFAULT_REGION=eu-west-1" in text
    assert "AWS_SECRET_ACCESS_KEY" not in text  # nodes use their instance profile
    assert "MPMAE_HOME" not in text  # a path on the launching machine


def test_aws_keys_only_when_asked():
    env = {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"}
    assert prepare.node_env(env, include_aws_keys=False) == {}
    assert prepare.node_env(env, include_aws_keys=True) == env


@pytest.mark.parametrize("uri", ["sqlite:///mlflow.db", "file:///tmp/mlruns", "mlruns"])
def test_local_tracking_stores_are_not_sent(uri):
    assert prepare.node_env({"MLFLOW_TRACKING_URI": uri}, include_aws_keys=False) == {}


def test_env_file_survives_a_posix_shell(tmp_path):
    value = "http://user:p a$s'word@host:5000"
    env_file = tmp_path / "mpmae.env"
    env_file.write_text(prepare.env_file_text({"MLFLOW_TRACKING_URI": value}))
    shown = subprocess.run(
        ["sh", "-c", f'set -a && . "{env_file}" && set +a && printenv MLFLOW_TRACKING_URI'],
        capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"})
    assert shown.stdout.rstrip("\n") == value
