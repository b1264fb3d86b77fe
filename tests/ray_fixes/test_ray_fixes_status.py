"""The Ray workarounds: which are on for the installed Ray, and mpmae without them.

A Ray that moved a private name, or another Ray minor, is simulated in a fresh interpreter
(the name deleted from its module; ``ray.__version__`` patched before mpmae loads), so
nothing here changes the test process's own Ray.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import ray
import yaml

from mpmae.ray_fixes import FIXES, status
from mpmae.ray_fixes.guard import WRITTEN_FOR

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter: imports what `pretrain` and `inspect` need, reports status.
PROBE = """
import json, sys, warnings
{setup}
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import mpmae.cli, mpmae.data.stream.tile_dataset, mpmae.train.loop, mpmae.tune.resources
    import ray.data
    from mpmae.cluster.connect import connect
    from mpmae.ray_fixes import status
    from mpmae.ray_fixes.embedded_ray import embedded_system_config
    from mpmae.ray_fixes.stream_callbacks import install
    context = ray.data.DataContext()
    install(context)
    report = {{"status": status(), "callbacks": len(context.custom_execution_callback_classes),
              "system_config": embedded_system_config()}}
report["warnings"] = [str(w.message) for w in caught if "mpmae's Ray fix" in str(w.message)]
print(json.dumps(report))
"""


def probe(setup: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE.format(setup=setup)],
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT / "platform"), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_fix_is_on_for_the_ray_it_was_written_for():
    assert ray.__version__.startswith(WRITTEN_FOR + ".")
    assert status() == {fix.name: "on" for fix in FIXES}


def test_a_ray_that_moved_a_private_name_runs_without_that_fix_and_warns_once():
    # Ray's own modules have already bound it; only a fresh lookup sees it gone.
    report = probe("import ray.data._internal.execution.execution_callback as m; "
                   "del m.ExecutionCallback")
    assert report["status"]["spin_guard"].startswith("off: this Ray has no ray.data._internal")
    assert report["status"]["reservation_wait"].startswith("off: this Ray has no")
    assert report["status"]["idle_workers"] == "on"
    assert report["callbacks"] == 0
    assert len(report["warnings"]) == 1 and "spin_guard" in report["warnings"][0]


def test_another_ray_minor_turns_the_version_bound_fixes_off():
    report = probe('import ray; ray.__version__ = "2.61.0"')
    bound = {fix.name for fix in FIXES if fix.version_bound}
    for name, state in report["status"].items():
        expected = "off: written for Ray 2.60, this is Ray 2.61" if name in bound else "on"
        assert state == expected, name
    assert report["callbacks"] == 0 and report["system_config"] == {}


def test_ray_is_pinned_to_the_tested_minor_everywhere():
    # (read as text: tomllib is Python 3.11+, the project supports 3.10)
    pins = re.findall(r'"ray\[[^\]]*\]([^"]*)"', (ROOT / "pyproject.toml").read_text())
    assert pins == [f">={WRITTEN_FOR},<2.{int(WRITTEN_FOR.split('.')[1]) + 1}"]
    version = f"{WRITTEN_FOR}.0"
    assert f"ray=={version}" in (ROOT / "infra/docker/constraints.txt").read_text()
    assert f"rayproject/ray:{version}-" in (ROOT / "infra/docker/Dockerfile").read_text()
    cluster = yaml.safe_load((ROOT / "ray-cluster.yaml").read_text())
    assert cluster["docker"]["image"].startswith(f"rayproject/ray:{version}-")
    for manifest in ("raycluster.yaml", "rayjob-pretrain.yaml", "rayjob-sweep.yaml"):
        text = (ROOT / "infra/k8s" / manifest).read_text()
        assert re.findall(r'rayVersion: "([^"]+)"', text) == [version], manifest
