"""SIGTERM to `mpmae tune`: the running trial checkpoints at its current step, the sweep
exits 75 with one line, and the same command finishes it with no step lost or repeated."""

from __future__ import annotations

import glob
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mpmae.config import load_config
from mpmae.tune.config import TuneConfig

pytestmark = pytest.mark.ray

STEPS = 12
ONE_AT_A_TIME = ["max_concurrent_trials=1", "scheduler.kind=none",
                 f"pretrain.train.max_steps={STEPS}", "pretrain.train.probe_every=6"]


def _command(items: list[str]) -> list[str]:
    return [sys.executable, "-m", "mpmae.cli", "tune",
            *[arg for item in items for arg in ("--set", item)]]


def test_a_preempted_sweep_resumes_its_trial_at_the_step(sweep_args, sweep_runs, tmp_path):
    items = [*sweep_args, *ONE_AT_A_TIME]
    cfg = load_config(TuneConfig, None, items)
    sweep_dir = Path(cfg.pretrain.storage.root) / "s"
    first = subprocess.Popen(_command(items), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while not glob.glob(str(sweep_dir / "trials" / "*" / "checkpoint_*" / "checkpoint.json")):
            assert first.poll() is None, first.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "no trial checkpoint in time"
            time.sleep(0.5)
        first.send_signal(signal.SIGTERM)
        _, errors = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 75, errors[-3000:]
    assert re.fullmatch(r"mpmae: sweep preempted: [12] trial\(s\) checkpointed at their current "
                        r"step; run the same command to resume", errors.strip().splitlines()[-1])
    assert not list((sweep_dir / "trials").glob("*/trial.json"))  # nothing recorded as done
    _, parents, started = sweep_runs(cfg)
    assert [r.info.status for r in parents] == ["KILLED"]
    assert started and {r.info.status for r in started} == {"KILLED"}  # resumable, not done

    second = subprocess.run(_command(items), capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    client, _, trials = sweep_runs(cfg)
    assert len(trials) == 2
    assert {r.info.status for r in trials} == {"FINISHED"}  # re-attached, then finished
    for run in trials:  # each step trained (and logged) once: none lost, none repeated
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss"))
        assert steps == list(range(1, STEPS + 1)), (run.info.run_name, steps)
