"""A private Ray head for tests: own temp dir, own free ports, own token; stopped by pid.

`ray stop`, forced or not, would stop every Ray process of the user, including a
cluster they are working with, so the head started here is shut down by the pids of the
processes it spawned and nothing else.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
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


def free_ports(count: int) -> list[int]:
    """Ports the OS considers free now (all held open together so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


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
        yield RayHead(address, token, temp_dir)
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
    """Terminate the head's process tree (by pid) and anything still naming its temp dir."""
    known = _identities(_descendants(proc.pid) | _naming(str(temp_dir)))
    proc.send_signal(signal.SIGTERM)  # --block: ray start shuts down what it started
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    known |= _identities(_naming(str(temp_dir)))
    _signal_all(known, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _still_running(known):
        time.sleep(0.2)
    _signal_all(known, signal.SIGKILL)


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat fields after the command name (which may contain spaces)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _identities(pids: set[int]) -> dict[int, str]:
    """pid → start time of the live (non-zombie) ones; guards against pid reuse."""
    found = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields and fields[0] != "Z":
            found[pid] = fields[19]
    return found


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        fields = _stat_fields(int(entry.name)) if entry.name.isdigit() else None
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _descendants(pid: int) -> set[int]:
    children = _children_map()
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def _naming(text: str) -> set[int]:
    """Pids whose command line mentions ``text`` (our unique temp dir)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            pids.add(int(entry.name))
    return pids


def _still_running(identities: dict[int, str]) -> set[int]:
    """The recorded pids that are still the very processes we recorded."""
    now = _identities(set(identities))
    return {pid for pid, started in identities.items() if now.get(pid) == started}


def _signal_all(identities: dict[int, str], sig: signal.Signals) -> None:
    for pid in _still_running(identities):
        with suppress(ProcessLookupError):
            os.kill(pid, sig)
