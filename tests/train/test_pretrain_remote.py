"""Pretraining with everything remote: data and checkpoints on a real S3 endpoint (moto),
tracking on a real `mlflow server` whose artifacts also go to S3."""

from __future__ import annotations

import boto3
import mlflow
import pytest
from mlflow_server import mlflow_server

from mpmae.data.sources.synth import synthesize
from mpmae.train.launch import pretrain

pytestmark = [pytest.mark.ray, pytest.mark.s3]


def test_pretrain_on_s3_with_a_tracking_server(ray_local, s3_endpoint, s3_bucket, tiny_config,
                                               tmp_path, monkeypatch):
    opts = s3_endpoint
    for name, value in opts.as_env().items():
        monkeypatch.setenv(name, value)
    synthesize(f"{s3_bucket}/world", tiles=48, size=16, seed=4, downstream_tiles=0,
               storage=opts, progress=lambda _: None)
    server_env = {"MLFLOW_S3_ENDPOINT_URL": opts.endpoint_url, **opts.as_env()}
    with mlflow_server(tmp_path, f"{s3_bucket}/mlflow", server_env) as url:
        # The client side needs no S3 credentials for MLflow: the server proxies artifacts.
        cfg = tiny_config(f"data.uri={s3_bucket}/world", f"storage.root={s3_bucket}/runs",
                          f"storage.endpoint_url={opts.endpoint_url}",
                          f"mlflow.tracking_uri={url}")
        result = pretrain(cfg, progress=lambda _: None)
        client = mlflow.MlflowClient(url)
        run = client.get_run(result.mlflow_run_id)
        assert run.info.status == "FINISHED" and run.data.metrics["loss"] > 0
    s3 = boto3.client("s3", endpoint_url=opts.endpoint_url, region_name="us-east-1",
                      aws_access_key_id=opts.access_key_id,
                      aws_secret_access_key=opts.secret_access_key)
    bucket = s3_bucket.removeprefix("s3://")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert any(k.startswith("runs/t/checkpoint_") and k.endswith("checkpoint.json") for k in keys)
    assert "runs/t/encoder/model.safetensors" in keys
    assert "runs/t/run.json" in keys and "runs/t/config.yaml" in keys
    assert any(k.startswith("mlflow/") and k.endswith("config.yaml") for k in keys)
    assert any(k.startswith("mlflow/") and "reconstructions/step_000002.png" in k for k in keys)
