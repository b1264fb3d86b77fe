"""A sweep whose driver is killed resumes with the same command: same parent run, the
started trial continues from its checkpoint, the pending one runs."""

from __future__ import annotations

import contextlib
import csv
import glob
import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from mpmae.config import load_config
from mpmae.tune.config import TuneConfig

pytestmark = pytest.mark.ray

# One trial at a time, two workers each: the probe runs on rank 0 only and Tune must see
# rank 0's value, not the other rank's NaN placeholder.
RESUMABLE = ["max_concurrent_trials=1", "scheduler.kind=none", "pretrain.train.max_steps=6",
             "pretrain.scaling.num_workers=2"]


def _command(items: list[str]) -> list[str]:
    return [sys.executable, "-m", "mpmae.cli", "tune",
            *[arg for item in items for arg in ("--set", item)]]


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the driver (no chance to save anything), then what it started."""
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.kill()
    proc.wait()
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(children, timeout=30)


def _wait_for_checkpoint(sweep_dir: Path, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not glob.glob(str(sweep_dir / "trials" / "*" / "checkpoint_*" / "checkpoint.json")):
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        assert time.monotonic() < deadline, "no trial checkpoint in time"
        time.sleep(1)


def test_killed_sweep_resumes_with_the_same_command(sweep_args, sweep_runs, tmp_path):
    items = [*sweep_args, *RESUMABLE]
    cfg = load_config(TuneConfig, None, items)
    sweep_dir = Path(cfg.pretrain.storage.root) / "s"
    log = (tmp_path / "first.log").open("wb")
    first = subprocess.Popen(_command(items), stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_checkpoint(sweep_dir, first)
    finally:
        _kill_tree(first)
    parent_id = json.loads((sweep_dir / "run.json").read_text())["mlflow_run_id"]
    started = {p.parent.name: json.loads(p.read_text())["mlflow_run_id"]
               for p in (sweep_dir / "trials").glob("*/run.json")}

    second = subprocess.run(_command(items), capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "resuming sweep s" in second.stdout

    client, parents, trials = sweep_runs(cfg)
    assert [p.info.run_id for p in parents] == [parent_id]
    assert len(trials) == 2 and all(t.info.status == "FINISHED" for t in trials)
    for trial_id, run_id in started.items():  # re-attached, not duplicated
        assert json.loads((sweep_dir / "trials" / trial_id / "run.json").read_text()) == {
            "mlflow_run_id": run_id}
    for run in trials:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
        assert max(steps) == 6
    table = client.download_artifacts(parent_id, "results/trials.csv", str(tmp_path))
    with open(table) as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["completed", "completed"]
    # Tune saw rank 0's probe, not the other rank's NaN placeholder.
    assert all(0 <= float(r["probe_accuracy"]) <= 1 for r in rows)
