"""`mpmae submit … tune …`: the sweep as a Ray Job on a real head with token auth."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from ray_head import ray_head

from mpmae.cluster.submit import submit

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.ray


def test_submitted_sweep_runs_every_trial_as_nested_runs(sweep_args, tmp_path, capsys):
    tracking = next(a.split("=", 1)[1] for a in sweep_args if "tracking_uri=" in a)
    args = ["tune", *[item for a in sweep_args for item in ("--set", a)]]
    with ray_head(num_cpus=2) as head:
        rc = submit(head.address, args, working_dir=str(REPO),
                    env={"MPMAE_HOME": str(tmp_path / "home"), "RAY_AUTH_TOKEN": head.token})
    out = capsys.readouterr().out
    assert rc == 0, out[-3000:]
    assert "SUCCEEDED" in out and head.token not in out
    client = mlflow.MlflowClient(tracking)
    runs = client.search_runs([client.get_experiment_by_name("sweep-pretext").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(trials) == 2
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in trials)
    assert all("probe_accuracy" in r.data.metrics for r in trials)
