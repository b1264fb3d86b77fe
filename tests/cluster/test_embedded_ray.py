"""The embedded default starts a Ray of its own: a Ray the user runs on the machine, or the
address one left behind in the temp folder when it stopped, is not ours to attach to."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path

import pytest
from ray_head import free_ports, ray_head

pytestmark = pytest.mark.ray
PLATFORM = Path(__file__).resolve().parents[2] / "platform"

# In a fresh interpreter whose Ray temp folder holds the record of another Ray.
PROBE = """
import ray
from mpmae.cluster.connect import connect
assert connect("") is True
print("gcs", ray.get_runtime_context().gcs_address)
print("sum", ray.get(ray.remote(lambda: 1 + 1).remote()))
ray.shutdown()
"""


def embedded_run(recorded_address: str, home: Path) -> subprocess.CompletedProcess:
    # Ray's unix sockets live under its temp folder; their paths must stay short.
    ray_tmp = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))
    try:
        (ray_tmp / "ray").mkdir()
        (ray_tmp / "ray" / "ray_current_cluster").write_text(recorded_address)
        env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "MPMAE_HOME": str(home),
               "PYTHONPATH": os.pathsep.join([str(PLATFORM), os.environ.get("PYTHONPATH", "")])}
        env.pop("RAY_ADDRESS", None)
        return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                              text=True, timeout=180)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.parametrize("other", ["stopped", "running"])
def test_another_ray_on_the_machine_does_not_capture_the_embedded_default(other, tmp_path):
    with ray_head() if other == "running" else nullcontext() as head:
        recorded = head.gcs_address if head else f"127.0.0.1:{free_ports(1)[0]}"
        done = embedded_run(recorded, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sum 2" in done.stdout
    assert f"gcs {recorded}" not in done.stdout
