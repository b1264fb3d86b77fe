"""A tiny real sweep on a local Ray: two trials, nested MLflow runs, results, registration."""

from __future__ import annotations

import csv
import glob
import json
import pickle
from pathlib import Path

import pytest

from mpmae.tune.sweep import sweep

pytestmark = pytest.mark.ray


def test_two_trial_sweep_end_to_end(ray_local, tiny_sweep, sweep_runs, tmp_path):
    cfg = tiny_sweep()
    result = sweep(cfg, progress=lambda _: None)

    assert len(result.rows) == 2
    assert {r["pretext"] for r in result.rows} == {"S2", "sentinel2+aster"}
    assert all(0 <= r["probe_accuracy"] <= 1 for r in result.rows)
    assert result.best is not None and result.best["status"] == "completed"
    client, parents, trials = sweep_runs(cfg)
    assert [p.info.run_id for p in parents] == [result.mlflow_run_id]
    assert len(trials) == 2
    for run in trials:
        assert run.data.tags["mlflow.parentRunId"] == result.mlflow_run_id
        assert run.data.params["model.pretext"] in ("S2", '["sentinel2", "aster"]',
                                                    "sentinel2,aster")
        history = client.get_metric_history(run.info.run_id, "probe_accuracy")
        assert history and history[0].step == 1  # the first probe comes with the first step
        assert "loss/sentinel2" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(result.mlflow_run_id, "results")}
    assert artifacts == {"results/trials.csv", "results/probe_by_pretext.png"}
    table = client.download_artifacts(result.mlflow_run_id, "results/trials.csv", str(tmp_path))
    with open(table) as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["trial_id"] for r in rows) == sorted(r["trial_id"] for r in result.rows)
    version = client.get_model_version("mpmae-encoder", result.model_version)
    assert version.tags["mpmae.pretext"] == result.best["pretext"]
    for row in result.rows:  # each trial is a run of its own, with its own checkpoints
        assert glob.glob(f"{result.sweep_dir}/trials/{row['trial_id']}/checkpoint_*")

    assert sorted(r["trial_id"] for r in result.rows) == ["t000", "t001"]
    for row in result.rows:
        record = json.loads(Path(result.sweep_dir, "trials", row["trial_id"], "trial.json")
                            .read_text())
        assert record["status"] == "completed" and record["metrics"]["step"] == 4

    # Tune's own state is pickled: a resumed sweep must not read it back. Make every pickle
    # in it one that would leave a file if it were ever unpickled.
    marker = tmp_path / "ran"
    planted = glob.glob(f"{result.sweep_dir}/tune/**/*.pkl", recursive=True)
    assert planted, "Tune wrote no pickle to plant into"
    for path in planted:
        Path(path).write_bytes(pickle.dumps(_Leaves(marker)))
    said: list[str] = []
    again = sweep(cfg, progress=said.append)  # a finished sweep: same run, no new version
    assert not marker.exists()
    assert "2 of 2 trial(s) already ended; running the other 0" in said
    assert again.mlflow_run_id == result.mlflow_run_id
    assert again.model_version == result.model_version
    assert len(sweep_runs(cfg)[1]) == 1
    assert len(client.search_model_versions("name='mpmae-encoder'")) == 1


class _Leaves:
    """Unpickled, it creates ``path``: proof that a pickle ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")
