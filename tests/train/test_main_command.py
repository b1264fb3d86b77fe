"""The README's main command as a user runs it: its own process, starting its own Ray."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.ray

TINY = ["data.synth_tiles=48", "data.tile_size=16", "model.img_size=16",
        "train.batch_size=4", "train.max_steps=2", "train.log_every=1",
        "train.figure_every=0", "scaling.cpus_per_worker=0.5", "scaling.data_cpus=0.5",
        "mlflow.system_metrics=false", "run_name=own-ray"]


def test_pretrain_starts_its_own_ray_and_keeps_the_console_to_our_progress(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    env["MPMAE_HOME"] = str(tmp_path / "home")
    args = [a for item in TINY for a in ("--set", item)]
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, mpmae.cli; sys.exit(mpmae.cli.main())",
         "pretrain", *args],
        env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "done: run own-ray" in proc.stdout
    assert "Running Dataset" not in proc.stderr  # Ray Data's bars would garble our progress
    console = proc.stdout + proc.stderr
    for noise in ("Failed to query Ray Train Controller", "Starting execution of Dataset",
                  "PreemptionWatcher", "RayDeprecationWarning", "array is not writable"):
        assert noise not in console
