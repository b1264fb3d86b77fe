"""The embedded default starts a Ray of its own: a Ray the user runs on the machine, or the
address one left behind in the temp folder when it stopped, is not ours to attach to."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from ray_head import free_ports

pytestmark = pytest.mark.ray
PLATFORM = Path(__file__).resolve().parents[2] / "platform"

# In a fresh interpreter: the record points at a Ray that is gone.
PROBE = """
import ray
from mpmae.cluster.connect import connect
assert connect("") is True
print("sum", ray.get(ray.remote(lambda: 1 + 1).remote()))
ray.shutdown()
"""


def test_a_stale_ray_record_on_the_machine_does_not_capture_the_embedded_default(tmp_path):
    # Ray's unix sockets live under its temp folder; their paths must stay short.
    ray_tmp = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))
    try:
        (ray_tmp / "ray").mkdir()
        (ray_tmp / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{free_ports(1)[0]}")
        env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "MPMAE_HOME": str(tmp_path),
               "PYTHONPATH": os.pathsep.join([str(PLATFORM), os.environ.get("PYTHONPATH", "")])}
        env.pop("RAY_ADDRESS", None)
        done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                              text=True, timeout=180)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sum 2" in done.stdout
