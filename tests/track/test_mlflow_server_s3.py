"""Everything a training run logs, through a real `mlflow server` whose artifacts go to S3.

The client holds no S3 credentials: artifacts are proxied by the server (MLflow 3's
default ``--serve-artifacts``), and must really land in the moto bucket.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
import torch
from run_start import log_pretrain_encoder, sink_of_active_run, start_pretrain_run

import mpmae
from mpmae.track.registry import download_encoder
from mpmae.track.runs import end_run

pytestmark = pytest.mark.s3


def test_a_run_through_the_server_lands_in_s3(tracking_server, make_cfg, release_dir,
                                              monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL",
                 "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    cfg = make_cfg(**{"mlflow.tracking_uri": tracking_server.url})

    run_id = start_pretrain_run(cfg, run_name="remote")
    with sink_of_active_run(tmp_path) as sink:
        sink.log_metrics({"loss": 2.0}, step=0)
        sink.log_figure(b"\x89PNG not really", step=100)
    end_run("FAILED")
    assert start_pretrain_run(cfg, run_name="remote", run_id=run_id) == run_id
    with sink_of_active_run(tmp_path) as sink:
        sink.log_metrics({"loss": 1.0}, step=5)
    version = log_pretrain_encoder(release_dir, cfg, model_card="# remote\n")
    end_run()

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(cfg.name)
    assert [r.info.run_id for r in client.search_runs([experiment.experiment_id])] == [run_id]
    assert [m.value for m in client.get_metric_history(run_id, "loss")] == [2.0, 1.0]

    listing = tracking_server.s3_client.list_objects_v2(Bucket=tracking_server.bucket)
    keys = {obj["Key"] for obj in listing.get("Contents", [])}
    run_prefix = f"mlflow/{experiment.experiment_id}/{run_id}/artifacts/"
    for name in ("config.yaml", "reconstructions/step_000100.png", "encoder/model.safetensors",
                 "encoder/config.json", "encoder/README.md"):
        assert run_prefix + name in keys
    assert any(k.endswith("/artifacts/MLmodel") and "/models/" in k for k in keys)

    model_uri = f"models:/{cfg.mlflow.register_as}/{version}"
    folder = download_encoder(model_uri, tmp_path)
    assert (folder / "README.md").read_text() == "# remote\n"
    x = np.zeros((1, 12, 8, 8), dtype=np.float32)
    with torch.no_grad():
        expected = mpmae.load_encoder(folder).embed(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(mlflow.pyfunc.load_model(model_uri).predict(x), expected,
                               rtol=1e-5)
