"""`pretrain` while its tracking server goes away and comes back: training goes on through
the outage, the run finishes, and the metrics logged meanwhile arrive after the restart."""

from __future__ import annotations

import glob
import json
import threading
import time
from pathlib import Path

import mlflow
import pytest
from mlflow_server import stoppable_mlflow_server

from mpmae.train.launch import pretrain

pytestmark = pytest.mark.ray


def _checkpoints(run_dir: Path) -> set[str]:
    """The checkpoints Ray Train has written so far (named by time, not step)."""
    return {Path(p).parent.name
            for p in glob.glob(str(run_dir / "checkpoint_*" / "checkpoint.json"))}


def _outage(server, run_dir: Path, seen: dict) -> None:
    """Stop the server once the run's first metrics are in; start it again once training
    wrote a checkpoint while it was away."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if (run_dir / "run.json").exists():
            run_id = json.loads((run_dir / "run.json").read_text())["mlflow_run_id"]
            if mlflow.MlflowClient(server.url).get_metric_history(run_id, "loss"):
                break
        time.sleep(0.2)
    server.stop()
    try:
        seen["before"] = _checkpoints(run_dir)
        while time.monotonic() < deadline and _checkpoints(run_dir) <= seen["before"]:
            time.sleep(0.2)
        seen["during"] = _checkpoints(run_dir) - seen["before"]
    finally:
        server.start()


def test_pretrain_trains_through_a_tracking_outage(ray_local, tiny_config, tmp_path):
    with stoppable_mlflow_server(tmp_path / "server") as server:
        cfg = tiny_config(f"mlflow.tracking_uri={server.url}", "train.max_steps=60",
                          "train.checkpoint_every=10", "train.figure_every=0")
        seen: dict = {}
        outage = threading.Thread(target=_outage, args=(server, tmp_path / "runs" / "t", seen))
        outage.start()
        result = pretrain(cfg, progress=lambda _: None)
        outage.join()
        assert seen["during"], "no checkpoint was written while the server was away"
        client = mlflow.MlflowClient(server.url)
        run = client.get_run(result.mlflow_run_id)
        assert run.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
        assert sorted(steps) == list(range(1, result.steps + 1))  # the data's epochs cap it
    assert not (tmp_path / "runs" / "t" / "unsent_tracking").exists()
