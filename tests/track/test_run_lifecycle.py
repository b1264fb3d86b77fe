"""The MLflow run of a training run: URIs, params, tags, config, metrics, resume."""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest
import torch
import yaml
from run_start import sink_of_active_run, start_pretrain_run

from mpmae import __version__
from mpmae.config import flatten, from_dict, override
from mpmae.track.config import MlflowConfig
from mpmae.track.runs import (
    MAX_PARAM_LENGTH,
    TRUNCATION_MARK,
    end_run,
    tracking_uri,
    training_metrics,
)
from mpmae.train.config import PretrainConfig

REPO = Path(__file__).resolve().parents[2]


def _runs(cfg: PretrainConfig) -> list:
    client = mlflow.MlflowClient(cfg.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(cfg.name)
    return client.search_runs([experiment.experiment_id])


def _steps(client: mlflow.MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_tracking_uri_comes_from_config_then_environment_then_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MPMAE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://from-env:5000")
    assert tracking_uri(MlflowConfig(tracking_uri="http://from-config")) == "http://from-config"
    assert tracking_uri(MlflowConfig()) == "http://from-env:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking_uri(MlflowConfig()) == f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
    assert (tmp_path / "home").is_dir()


def test_a_run_logs_the_config_as_params_tags_and_yaml(make_cfg):
    cfg = make_cfg(**{"model.pretext": "rgb", "model.size": "femto"})
    run_id = start_pretrain_run(cfg, run_name="first", params={"trial": 3}, tags={"team": "eo"})
    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    assert run.info.status == "RUNNING" and run.info.run_name == "first"
    assert run.data.params == {**{k: str(v) for k, v in flatten(cfg).items()}, "trial": "3"}
    tags = run.data.tags
    assert tags["mpmae.version"] == __version__ and tags["team"] == "eo"
    assert tags["mpmae.pretext"] == "rgb" and tags["mpmae.model_size"] == "femto"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert tags["mlflow.source.git.commit"] == head
    saved = mlflow.artifacts.load_text(f"runs:/{run_id}/config.yaml")
    assert from_dict(PretrainConfig, yaml.safe_load(saved)) == cfg
    end_run("FINISHED")
    assert client.get_run(run_id).info.status == "FINISHED"
    assert [r.info.run_id for r in _runs(cfg)] == [run_id]


def test_a_resumed_run_reattaches_and_its_metrics_continue(make_cfg, tmp_path):
    cfg = make_cfg()
    run_id = start_pretrain_run(cfg, run_name="resumable")
    with sink_of_active_run(tmp_path) as sink:
        sink.log_metrics({"loss": 2.0}, step=0)
        sink.log_metrics({"loss": 1.5}, step=5)
    end_run("FAILED")

    assert start_pretrain_run(cfg, run_name="resumable", run_id=run_id) == run_id
    assert mlflow.active_run().info.status == "RUNNING"
    with sink_of_active_run(tmp_path) as sink:
        sink.log_metrics({"loss": 1.0}, step=10)
    end_run("KILLED")
    assert start_pretrain_run(cfg, run_name="resumable", run_id=run_id) == run_id
    end_run()

    client = mlflow.MlflowClient()
    assert [r.info.run_id for r in _runs(cfg)] == [run_id]
    assert _steps(client, run_id, "loss") == [(0, 2.0), (5, 1.5), (10, 1.0)]
    assert client.get_run(run_id).info.status == "FINISHED"


def test_a_resumed_run_keeps_its_first_params_and_says_which_changed(make_cfg, caplog):
    cfg = make_cfg()
    run_id = start_pretrain_run(cfg, run_name="r")
    end_run("FAILED")
    changed = override(cfg, {"train.max_steps": 500})
    with caplog.at_level(logging.WARNING, logger="mpmae.track.runs"):
        start_pretrain_run(changed, run_name="r", run_id=run_id, params={"resumes": 1})
    end_run()
    assert "train.max_steps" in caplog.text
    params = mlflow.MlflowClient().get_run(run_id).data.params
    assert params["train.max_steps"] == "null" and params["resumes"] == "1"
    saved = yaml.safe_load(mlflow.artifacts.load_text(f"runs:/{run_id}/config.yaml"))
    assert saved["train"]["max_steps"] == 500


def test_a_run_id_the_store_does_not_know_starts_a_new_tagged_run(make_cfg, caplog):
    cfg = make_cfg()
    lost = "0123456789abcdef0123456789abcdef"
    with caplog.at_level(logging.WARNING, logger="mpmae.track.runs"):
        run_id = start_pretrain_run(cfg, run_name="from-elsewhere", run_id=lost)
    end_run()
    assert run_id != lost and lost in caplog.text
    assert mlflow.MlflowClient().get_run(run_id).data.tags["mpmae.resumed_from"] == lost


def test_long_and_many_params_are_truncated_and_batched(make_cfg):
    cfg = make_cfg()
    extra = {f"p{i:03d}": i for i in range(250)}
    run_id = start_pretrain_run(cfg, run_name="long", params={"long": "x" * 10_000, **extra})
    end_run()
    params = mlflow.MlflowClient().get_run(run_id).data.params
    assert len(params["long"]) == MAX_PARAM_LENGTH and params["long"].endswith(TRUNCATION_MARK)
    assert all(params[k] == str(v) for k, v in extra.items())


def test_training_metrics_are_named_per_task_and_logged_per_step(make_cfg, tmp_path):
    output = SimpleNamespace(
        loss=torch.tensor(3.0),
        task_losses={"sentinel2": torch.tensor(1.0), "biome": torch.tensor(2.0)},
        task_weights={"sentinel2": torch.tensor(0.5), "biome": torch.tensor(1.0)},
    )
    metrics = training_metrics(output, lr=1e-4, tiles_per_s=120.0, data_wait_fraction=0.25)
    assert metrics == {"loss": 3.0, "lr": 1e-4, "tiles_per_s": 120.0, "data_wait_fraction": 0.25,
                       "loss/sentinel2": 1.0, "loss/biome": 2.0,
                       "weight/sentinel2": 0.5, "weight/biome": 1.0}
    run_id = start_pretrain_run(make_cfg(), run_name="metrics")
    with sink_of_active_run(tmp_path) as sink:
        sink.log_metrics(metrics, step=5)
        sink.log_metrics({**metrics, "loss/biome": 1.0}, step=10)
    end_run()
    client = mlflow.MlflowClient()
    assert _steps(client, run_id, "loss/biome") == [(5, 2.0), (10, 1.0)]
    assert _steps(client, run_id, "weight/sentinel2") == [(5, 0.5), (10, 0.5)]


def test_figures_go_under_reconstructions_by_step(make_cfg, tmp_path):
    run_id = start_pretrain_run(make_cfg(), run_name="figures")
    with sink_of_active_run(tmp_path) as sink:
        sink.log_figure(b"\x89PNG fake", step=100)
    end_run()
    files = mlflow.MlflowClient().list_artifacts(run_id, "reconstructions")
    assert [f.path for f in files] == ["reconstructions/step_000100.png"]


def test_the_default_store_keeps_artifacts_next_to_its_database(make_cfg, monkeypatch,
                                                                 tmp_path):
    monkeypatch.setenv("MPMAE_HOME", str(tmp_path))
    run_id = start_pretrain_run(make_cfg(**{"mlflow.tracking_uri": ""}), run_name="embedded")
    end_run()
    assert (tmp_path / "mlflow.db").is_file()
    artifact_uri = mlflow.MlflowClient().get_run(run_id).info.artifact_uri
    assert artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())
    assert (tmp_path / "mlartifacts").is_dir()


HAS_PSUTIL = importlib.util.find_spec("psutil") is not None


@pytest.mark.skipif(not HAS_PSUTIL, reason="psutil is not installed")
def test_system_metrics_are_sampled_into_the_run(make_cfg, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "1")
    run_id = start_pretrain_run(make_cfg(**{"mlflow.system_metrics": True}), run_name="system")
    client = mlflow.MlflowClient()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not client.get_run(run_id).data.metrics:
        time.sleep(0.2)
    end_run()
    assert any(k.startswith("system/") for k in client.get_run(run_id).data.metrics)


@pytest.mark.skipif(HAS_PSUTIL, reason="psutil is installed: system metrics really start")
def test_system_metrics_without_psutil_warn_instead_of_failing(make_cfg, caplog):
    with caplog.at_level(logging.WARNING, logger="mpmae.track.runs"):
        start_pretrain_run(make_cfg(**{"mlflow.system_metrics": True}), run_name="no-psutil")
    end_run()
    assert "psutil is not installed" in caplog.text


def test_importing_track_does_not_import_mlflow():
    code = ("import sys, mpmae.track.runs, mpmae.track.registry, mpmae.track.figures\n"
            "assert 'mlflow' not in sys.modules, 'mlflow imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
