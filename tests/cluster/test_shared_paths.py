"""On a cluster an empty data.uri or storage.root is refused before any cluster work: it
would mean the driver node's cache folder, which no worker can read."""

from __future__ import annotations

import pytest

from mpmae.cli import main
from mpmae.config import ConfigError, override
from mpmae.train.config import PretrainConfig
from mpmae.train.launch import resolved


@pytest.fixture
def inside_a_ray_job(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")  # as Ray sets it for a job's driver
    monkeypatch.delenv("MPMAE_HOME", raising=False)


def test_empty_paths_on_a_cluster_are_refused(inside_a_ray_job):
    with pytest.raises(ConfigError, match=r"data\.uri and storage\.root must be set to an "
                                          r"s3:// URI or a path every node shares"):
        resolved(PretrainConfig())


def test_one_empty_path_is_named(inside_a_ray_job):
    cfg = override(PretrainConfig(), {"data.uri": "s3://bucket/tiles"})
    with pytest.raises(ConfigError, match=r"^storage\.root: on a cluster storage\.root must"):
        resolved(cfg)


def test_set_paths_or_a_chosen_home_are_accepted(inside_a_ray_job, monkeypatch, tmp_path):
    cfg = override(PretrainConfig(), {"data.uri": "s3://bucket/tiles",
                                      "storage.root": "/shared/runs",
                                      "mlflow.tracking_uri": f"sqlite:///{tmp_path}/m.db"})
    assert resolved(cfg).storage.root == "/shared/runs"
    monkeypatch.setenv("MPMAE_HOME", str(tmp_path / "shared-home"))
    assert resolved(PretrainConfig()).storage.root == str(tmp_path / "shared-home" / "runs")


def test_the_cli_refuses_before_connecting(monkeypatch, capsys):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("MPMAE_HOME", raising=False)
    # An address nothing answers at: reaching the check proves no connection was tried.
    assert main(["pretrain", "--set", "scaling.address=127.0.0.1:9"]) == 2
    assert "data.uri and storage.root must be set" in capsys.readouterr().err


def test_a_laptop_run_keeps_the_embedded_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("MPMAE_HOME", raising=False)
    cfg = override(PretrainConfig(), {"mlflow.tracking_uri": f"sqlite:///{tmp_path}/m.db"})
    assert resolved(cfg).data.uri  # the synthetic world in the cache folder
