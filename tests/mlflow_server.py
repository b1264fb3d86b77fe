"""A real `mlflow server` for tests: its own port and SQLite file, artifacts proxied to a store.

The server runs in a session of its own and is stopped through that process group only
(terminate, wait, kill): it spawns uvicorn workers, and nothing else may be touched.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def mlflow_server(workdir: Path, artifacts_destination: str, env: Mapping[str, str],
                  timeout_s: float = 120) -> Iterator[str]:
    """Run ``mlflow server`` with a SQLite backend in ``workdir`` and artifacts served from
    ``artifacts_destination`` (e.g. ``s3://bucket/prefix``; ``env`` holds what the server
    needs to reach it). Yields the server's URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with served(_command(workdir, artifacts_destination, port), workdir, env, url, timeout_s):
        yield url


class StoppableServer:
    """An ``mlflow server`` that a test stops and starts again on the same port and store,
    as an outage of the tracking server looks to its clients."""

    def __init__(self, workdir: Path, artifacts_destination: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._command = _command(workdir, artifacts_destination, self.port)
        self._workdir = workdir
        self._running: ExitStack | None = None

    def start(self, timeout_s: float = 120) -> None:
        self._running = ExitStack()
        self._running.enter_context(served(self._command, self._workdir, {}, self.url,
                                           timeout_s))

    def stop(self) -> None:
        if self._running is not None:
            self._running.close()
            self._running = None


@contextmanager
def stoppable_mlflow_server(workdir: Path) -> Iterator[StoppableServer]:
    """A running :class:`StoppableServer` with artifacts in ``workdir/artifacts``; stopped
    at the end whatever state the test left it in."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = StoppableServer(workdir, str(workdir / "artifacts"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _command(workdir: Path, artifacts_destination: str, port: int) -> list[str]:
    return [
        str(Path(sys.executable).with_name("mlflow")), "server",
        "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
        "--artifacts-destination", artifacts_destination,
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        # The Host header clients send; anything else is refused (DNS-rebinding guard).
        "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}",
    ]


@contextmanager
def served(command: list[str], workdir: Path, env: Mapping[str, str], url: str,
           timeout_s: float = 120) -> Iterator[None]:
    """Run ``command`` (an ``mlflow server`` listening at ``url``) in ``workdir`` until
    its /health answers; stop its process group on exit. Its log: ``workdir/mlflow-server.log``."""
    log = workdir / "mlflow-server.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(command, cwd=workdir, env={**os.environ, **env}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_healthy(proc, url, log, timeout_s)
        yield
    finally:
        _stop(proc)


def _wait_healthy(proc: subprocess.Popen, url: str, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited ({proc.returncode}):\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise TimeoutError(f"mlflow server did not answer /health in {timeout_s}s; see {log}")


def _stop(proc: subprocess.Popen) -> None:
    """Terminate the server's process group, wait, then kill whatever is left of it."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=20)
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
