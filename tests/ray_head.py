"""A private Ray head for tests: own temp dir, own free ports, own token; stopped by pid.

`ray stop`, forced or not, would stop every Ray process of the user, including a
cluster they are working with, so the head started here is shut down by the pids of the
processes it spawned and nothing else.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

# The by-pid process handling and port picking of infra/local (scripts, not a package).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "infra" / "local"))
import pids
from stack import free_ports

PORT_FLAGS = (
    "--port",
    "--dashboard-port",
    "--ray-client-server-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--runtime-env-agent-port",
    "--metrics-export-port",
    "--node-manager-port",
    "--object-manager-port",
)


@dataclass(frozen=True)
class RayHead:
    """A running head: where its Job API listens and the token it demands."""

    address: str
    token: str
    temp_dir: Path
    gcs_address: str  # what `ray.init(address=...)` on this machine would attach to


@contextmanager
def ray_head(timeout_s: float = 60, num_cpus: int = 1) -> Iterator[RayHead]:
    """Start `ray start --head --block` with token auth on; stop exactly its processes."""
    # Ray puts unix sockets under the temp dir; their paths must stay under ~100 bytes.
    temp_dir = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))
    token = secrets.token_hex(32)
    token_file = temp_dir / "auth_token"
    token_file.write_text(token)
    ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS)), strict=True))
    address = f"http://127.0.0.1:{ports['--dashboard-port']}"
    proc = subprocess.Popen(
        _command(temp_dir, ports, num_cpus),
        env=_head_env(token_file),
        stdout=(temp_dir / "head.out").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_ready(proc, address, token, temp_dir, timeout_s)
        # Jobs go through the head's dashboard agent, which may come up after the Job API.
        _wait_listening(ports["--dashboard-agent-listen-port"], timeout_s)
        yield RayHead(address, token, temp_dir, f"127.0.0.1:{ports['--port']}")
    finally:
        _stop(proc, temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _command(temp_dir: Path, ports: dict[str, int], num_cpus: int) -> list[str]:
    ray = str(Path(sys.executable).with_name("ray"))
    flags = [f"{flag}={port}" for flag, port in ports.items()]
    return [
        ray, "start", "--head", "--block", *flags,
        "--dashboard-host=127.0.0.1", "--include-dashboard=true",
        f"--num-cpus={num_cpus}", "--object-store-memory=100000000", "--include-log-monitor=false",
        f"--temp-dir={temp_dir}", "--disable-usage-stats",
    ]


def _head_env(token_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "AWS_"))}
    # Token auth on explicitly, with a token of our own rather than the user's ~/.ray one.
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_file),
               RAY_USAGE_STATS_ENABLED="0")
    # Job entrypoints say `python`: make that this interpreter.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _wait_ready(proc: subprocess.Popen, address: str, token: str, temp_dir: Path,
                timeout_s: float) -> None:
    """Wait until the Job API answers an authenticated request."""
    deadline = time.monotonic() + timeout_s
    request = urllib.request.Request(f"{address}/api/jobs/",
                                     headers={"Authorization": f"Bearer {token}"})
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited: {(temp_dir / 'head.out').read_text()}")
        try:
            with urllib.request.urlopen(request, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise TimeoutError(f"Ray head did not come up in {timeout_s}s; see {temp_dir}/head.out")


def _wait_listening(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"nothing listens on port {port} after {timeout_s}s")


def _stop(proc: subprocess.Popen, temp_dir: Path) -> None:
    """Stop the head (by pid) and anything still naming its temp dir: the same by-pid,
    start-time-checked shutdown the local stack script uses."""
    others = pids.identify_all(pids.descendants(proc.pid) | pids.naming(str(temp_dir)))
    leader = pids.identify(proc.pid)
    if leader is not None:  # --block: ray start shuts down what it started on SIGTERM
        pids.stop(leader, others)
    pids.terminate(pids.identify_all(pids.naming(str(temp_dir))))
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)  # reap it
