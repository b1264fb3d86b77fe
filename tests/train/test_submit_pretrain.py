"""`mpmae submit … pretrain` against a real local Ray head with its dashboard and token auth."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from ray_head import ray_head

from mpmae.cluster.submit import submit

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.ray


def test_submitted_pretrain_job_succeeds_and_tracks_its_run(tmp_path, capsys):
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"MPMAE_HOME": str(tmp_path / "home"), "MLFLOW_TRACKING_URI": tracking}
    args = ["pretrain", "--set", "data.synth_tiles=32", "--set", "data.tile_size=16",
            "--set", "model.img_size=16", "--set", "train.batch_size=4",
            "--set", "train.max_steps=2", "--set", "train.log_every=1",
            "--set", "train.figure_every=0", "--set", "scaling.cpus_per_worker=0.5",
            "--set", "scaling.data_cpus=0.5", "--set", "mlflow.system_metrics=false",
            "--set", "run_name=submitted"]
    with ray_head(num_cpus=2) as head:
        rc = submit(head.address, args, working_dir=str(REPO),
                    env={**env, "RAY_AUTH_TOKEN": head.token})
    out = capsys.readouterr().out
    assert rc == 0, out[-3000:]
    assert "SUCCEEDED" in out and "done: run submitted" in out
    assert head.token not in out
    client = mlflow.MlflowClient(tracking)
    runs = client.search_runs([client.get_experiment_by_name("demo").experiment_id])
    assert [r.info.run_name for r in runs] == ["submitted"]
    assert runs[0].info.status == "FINISHED"
    assert (tmp_path / "home" / "runs" / "submitted" / "encoder" / "model.safetensors").exists()
