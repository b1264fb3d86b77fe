"""The encoder release in MLflow: run artifacts, registered pyfunc model, download back."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest
import torch
from run_start import log_pretrain_encoder, sink_of_active_run, start_pretrain_run

import mpmae
from mpmae.track.registry import download_encoder
from mpmae.track.runs import end_run

CARD = "# Test encoder\n\nAn atto encoder for the tests.\n"


def embeddings(release, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return mpmae.load_encoder(release).embed(torch.from_numpy(x)).numpy()


def test_encoder_is_logged_registered_and_loads_back(make_cfg, release_dir, tmp_path):
    cfg = make_cfg(**{"model.size": "atto", "model.pretext": "all"})
    run_id = start_pretrain_run(cfg, run_name="final")
    version = log_pretrain_encoder(release_dir, cfg, model_card=CARD)
    end_run()
    name = cfg.mlflow.register_as
    assert version == 1

    client = mlflow.MlflowClient()
    files = {f.path for f in client.list_artifacts(run_id, "encoder")}
    assert files == {"encoder/model.safetensors", "encoder/config.json", "encoder/README.md"}
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/encoder/README.md") == CARD
    assert (release_dir / "README.md").read_text() != CARD, "the release folder was modified"

    registered = client.get_model_version(name, "1")
    assert registered.run_id == run_id and registered.description == CARD
    assert registered.tags["mpmae.pretext"] == "all"
    assert registered.tags["mpmae.model_size"] == "atto"
    assert "mpmae" in client.get_registered_model(name).description

    x = np.random.default_rng(0).standard_normal((2, 12, 16, 16)).astype(np.float32)
    model = mlflow.pyfunc.load_model(f"models:/{name}/1")
    np.testing.assert_allclose(model.predict(x), embeddings(release_dir, x), rtol=1e-5)

    for uri in (f"models:/{name}/1", f"runs:/{run_id}/encoder"):
        folder = download_encoder(uri, tmp_path / uri.split(":")[0])
        assert (folder / "README.md").read_text() == CARD
        assert json.loads((folder / "config.json").read_text())["size"] == "atto"
        np.testing.assert_array_equal(embeddings(folder, x), embeddings(release_dir, x))


def test_a_second_training_run_adds_a_version(make_cfg, release_dir):
    cfg = make_cfg()
    versions = []
    for attempt in range(2):
        start_pretrain_run(cfg, run_name=f"run-{attempt}")
        versions.append(log_pretrain_encoder(release_dir, cfg))
        end_run()
    assert versions == [1, 2]
    card = mlflow.MlflowClient().get_model_version(cfg.mlflow.register_as, "2").description
    assert card == (release_dir / "README.md").read_text()


def test_registration_off_logs_the_artifacts_only(make_cfg, release_dir):
    cfg = make_cfg(**{"mlflow.register_as": ""})
    run_id = start_pretrain_run(cfg, run_name="no-registry")
    assert log_pretrain_encoder(release_dir, cfg) is None
    end_run()
    client = mlflow.MlflowClient()
    assert len(client.list_artifacts(run_id, "encoder")) == 3
    experiment_id = client.get_run(run_id).info.experiment_id
    assert not client.search_logged_models(experiment_ids=[experiment_id])


def test_a_folder_that_is_not_a_release_is_refused_before_any_upload(make_cfg, tmp_path):
    cfg = make_cfg()
    run_id = start_pretrain_run(cfg, run_name="bad")
    with pytest.raises(FileNotFoundError, match="release folder"):
        log_pretrain_encoder(tmp_path, cfg)
    end_run("FAILED")
    assert mlflow.MlflowClient().list_artifacts(run_id, "encoder") == []


def test_logging_needs_an_active_run(make_cfg, release_dir):
    with pytest.raises(RuntimeError, match="start_run"):
        log_pretrain_encoder(release_dir, make_cfg())


def test_downloading_something_that_is_no_encoder_says_so(make_cfg, tmp_path):
    run_id = start_pretrain_run(make_cfg(), run_name="figures-only")
    with sink_of_active_run(tmp_path) as sink:
        sink.log_figure(b"\x89PNG", step=1)
    end_run()
    with pytest.raises(FileNotFoundError, match="no mpmae encoder release"):
        download_encoder(f"runs:/{run_id}/reconstructions", tmp_path)
