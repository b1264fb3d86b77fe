"""Ray Train's placement-group cleaner, in the embedded Ray, asks that Ray whether a run's
controller lives, also while another Ray runs on the machine (where Ray 2.60's own check
raised "Found multiple active Ray instances" and the cleaner's thread died)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ray_head import ray_head

pytestmark = pytest.mark.ray
PLATFORM = Path(__file__).resolve().parents[2] / "platform"

# In a fresh interpreter: the embedded Ray, an actor, the cleaner's check in a worker.
PROBE = """
import json, ray
from mpmae.cluster.connect import connect
assert connect("") is True

@ray.remote(num_cpus=0)
class Controller:
    def ping(self):
        return 1

@ray.remote(num_cpus=0)
def check(actor_id):
    from ray.train.v2._internal.execution.controller import placement_group_cleaner as m
    try:
        return m.is_actor_alive(actor_id=actor_id, timeout=5)
    except Exception as e:
        return f"{type(e).__name__}: {e}"

controller = Controller.remote()
ray.get(controller.ping.remote())
actor_id = controller._actor_id.hex()
alive = ray.get(check.remote(actor_id))
ray.kill(controller)
dead = ray.get(check.remote(actor_id))
print(json.dumps({"alive": alive, "dead": dead}))
ray.shutdown()
"""


def test_the_cleaner_asks_the_embedded_ray_while_another_ray_runs(tmp_path):
    env = {**os.environ, "MPMAE_HOME": str(tmp_path),
           "PYTHONPATH": os.pathsep.join([str(PLATFORM), os.environ.get("PYTHONPATH", "")])}
    env.pop("RAY_ADDRESS", None)
    with ray_head():
        done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                              text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"alive": True, "dead": False}
