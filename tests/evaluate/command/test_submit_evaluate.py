"""`mpmae submit … evaluate ENCODER DATASET` end to end: the real CLI submits jobs/evaluate.py
to a real Ray head with token auth; the job embeds a GEO-Bench-layout dataset with a random
encoder, scores kNN and writes its results JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from geobench_layout import eurosat_like
from ray_head import ray_head

from mpmae.cli import main

pytestmark = [pytest.mark.ray,
              pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning")]
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The parts of this checkout a job needs: the entrypoint and the package."""
    root = tmp_path / "project"
    (root / "jobs").mkdir(parents=True)
    shutil.copy(REPO / "jobs" / "evaluate.py", root / "jobs" / "evaluate.py")
    shutil.copytree(REPO / "platform" / "mpmae", root / "platform" / "mpmae",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_submitted_knn_evaluation_writes_its_results(project, tmp_path, monkeypatch, capsys):
    dataset = eurosat_like(tmp_path / "bench")
    results = tmp_path / "out" / "results.json"
    with ray_head(num_cpus=2) as head:
        monkeypatch.setenv("RAY_AUTH_TOKEN", head.token)
        # The head runs on this machine, so the job can use these local paths.
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
        monkeypatch.setenv("MPMAE_HOME", str(tmp_path / "home"))
        rc = main(["submit", "--address", head.address, "--working-dir", str(project),
                   "evaluate", "random:atto", str(dataset), "--protocol", "knn",
                   "--results", str(results), "--set", "mlflow.system_metrics=false"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "SUCCEEDED" in out and "random:atto / knn / default" in out
    [row] = json.loads(results.read_text())["results"]
    assert (row["encoder"], row["dataset"], row["protocol"]) == ("random:atto", "m-eurosat",
                                                                  "knn")
    assert row["metric"] == "accuracy" and 0 <= row["value"] <= 1
    assert row["ci95"][0] <= row["value"] <= row["ci95"][1]
    assert (row["n_train"], row["n_test"]) == (10, 3)
    assert head.token not in out
