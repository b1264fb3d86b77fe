"""The slow one (~3 min): a real sweep on an autoscaling one-machine cluster.

The head is ray-cluster.yaml's CPU head (no accelerator_gpu, so no training worker fits on
it) run with Ray's fake multi-node provider; worker types are ray-cluster.yaml's, cut down
to 1 CPU each by infra/local/fake_cluster.py, from zero nodes. Each trial's training worker
asks for ``accelerator_gpu: 1`` (what a real GPU worker type offers), so the autoscaler must
add worker nodes for two concurrent trials and remove them once idle. Only the processes
started here are stopped, by pid.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from ray_head import PORT_FLAGS, _head_env, _stop, _wait_listening, free_ports

from mpmae.config import load_config
from mpmae.tune.config import TuneConfig

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _load_fake_cluster():
    """infra/ is not a package (its scripts run as files): import the converter by path."""
    path = Path(__file__).resolve().parents[2] / "infra" / "local" / "fake_cluster.py"
    spec = importlib.util.spec_from_file_location("infra_fake_cluster", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fake_cluster = _load_fake_cluster()
IDLE_TIMEOUT_MIN = 0.1
ON_ACCELERATORS = ["scheduler.kind=none", "pretrain.scaling.accelerator_resource=accelerator_gpu",
                   "pretrain.scaling.cpus_per_worker=1", "pretrain.scaling.data_cpus=1"]
# Polls ray.nodes() and prints the alive nodes holding accelerator_gpu, one JSON line a poll.
POLLER = """
import json, sys, time, ray
ray.init(address=sys.argv[1], log_to_driver=False)
while True:
    alive = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("accelerator_gpu")]
    print(json.dumps({"t": time.time(), "workers": len(alive)}), flush=True)
    time.sleep(1)
"""


@contextmanager
def autoscaling_head() -> Iterator[tuple[str, Path, dict[str, str]]]:
    """A fake-multinode head; yields its GCS address, its autoscaling config and the env
    a client needs."""
    temp_dir = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))  # short: unix socket paths
    token_file = temp_dir / "auth_token"
    token_file.write_text(secrets.token_hex(32))
    ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS)), strict=True))
    gcs = f"127.0.0.1:{ports['--port']}"
    cluster = fake_cluster.load_cluster()
    config = temp_dir / "autoscaling.yaml"
    config.write_text(yaml.safe_dump(fake_cluster.fake_config(
        cluster, gcs_address=gcs, worker_cpus=1, max_workers_per_type=2,
        idle_timeout_minutes=IDLE_TIMEOUT_MIN)))
    ray = str(Path(sys.executable).with_name("ray"))
    command = [ray, "start", "--head", "--block", *[f"{k}={v}" for k, v in ports.items()],
               f"--autoscaling-config={config}", *fake_cluster.head_start_flags(cluster),
               "--include-dashboard=false", "--object-store-memory=100000000",
               f"--temp-dir={temp_dir}", "--disable-usage-stats"]
    env = {**_head_env(token_file), "RAY_FAKE_CLUSTER": "1"}
    proc = subprocess.Popen(command, env=env, stdout=(temp_dir / "head.out").open("wb"),
                            stderr=subprocess.STDOUT)
    try:
        _wait_listening(ports["--port"], 60)
        client_env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        client_env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_file))
        yield gcs, config, client_env
    finally:
        _stop(proc, temp_dir)


def _worker_counts(lines: str) -> list[int]:
    return [json.loads(line)["workers"] for line in lines.splitlines() if line.startswith("{")]


def _wait_scaled_down(poll_log: Path, timeout: float = 180) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = _worker_counts(poll_log.read_text())
        if counts and counts[-1] == 0 and max(counts) > 0:
            return counts
        time.sleep(2)
    return _worker_counts(poll_log.read_text())


@pytest.mark.timeout(480)
def test_sweep_scales_accelerator_nodes_up_and_back_down(sweep_args, sweep_runs, tmp_path):
    with autoscaling_head() as (gcs, config, env):
        items = [*sweep_args, *ON_ACCELERATORS, f"pretrain.scaling.address={gcs}",
                 f"cluster_config={config}"]
        poll_log = tmp_path / "nodes.jsonl"
        poller = subprocess.Popen([sys.executable, "-c", POLLER, gcs], env=env,
                                  stdout=poll_log.open("w"), stderr=subprocess.DEVNULL)
        try:
            driver = subprocess.run(
                [sys.executable, "-m", "mpmae.cli", "tune",
                 *[arg for item in items for arg in ("--set", item)]],
                env=env, capture_output=True, text=True, timeout=360)
            assert driver.returncode == 0, driver.stdout[-3000:] + driver.stderr[-3000:]
            counts = _wait_scaled_down(poll_log)
        finally:
            poller.kill()
            poller.wait()

    assert _worker_counts(poll_log.read_text())[0] == 0  # started from zero workers
    assert max(counts) >= 2, counts  # one accelerator node per concurrent trial
    assert counts[-1] == 0, counts  # handed back after the idle timeout
    assert "2 trial(s), up to 2 at once" in driver.stdout
    client, parents, trials = sweep_runs(load_config(TuneConfig, None, items))
    assert len(parents) == 1 and len(trials) == 2
    for run in trials:  # every trial reported its probe, up to its last step
        history = client.get_metric_history(run.info.run_id, "probe_accuracy")
        assert history and max(m.step for m in history) == 4
