"""``infra/local/s3_proxy.py`` in a process of its own in front of a benchmark's S3 endpoint,
delaying every request as a far-away S3 does; the requests it saw are counted when it stops.

A process of its own, not the proxy's thread: its CPU is then neither the driver's nor
Ray's, and ``session_cpu`` reports it apart (``s3_proxy``).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "infra" / "local" / "s3_proxy.py"


class LatencyProxy:
    """``with LatencyProxy(upstream, 30.0) as proxy:`` clients use ``proxy.endpoint``; after
    the block ``proxy.requests`` holds how many requests it saw; ``request_log``: a file
    that gets a JSON line per request (its time, method and path)."""

    def __init__(self, upstream: str, latency_ms: float, request_log: str = "") -> None:
        self.upstream, self.latency_ms, self.request_log = upstream, latency_ms, request_log
        self.endpoint = ""
        self.requests: int | None = None
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> LatencyProxy:
        self.process = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--upstream", self.upstream, "--latency-ms",
             str(self.latency_ms), "--request-log", self.request_log],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            self.endpoint = json.loads(self.process.stdout.readline())["endpoint"]
        except (ValueError, KeyError):
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.process.send_signal(signal.SIGTERM)
        _, errors = self.process.communicate(timeout=30)
        lines = errors.splitlines()
        if lines and lines[-1].startswith("{"):  # its last word: {"counts": {...}}
            self.requests = json.loads(lines[-1])["counts"]["requests"]
