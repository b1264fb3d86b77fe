"""The local stack's S3 endpoint (a moto server) in a process of its own, with the bucket
made: ``with moto_endpoint(logs) as (upstream, server):``; stopped by its pid after."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

# infra/local: scripts, not a package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "infra" / "local"))
from pids import terminate
from stack import (
    BUCKET,
    LOCAL_KEYS,
    REGION,
    answers,
    create_bucket,
    free_ports,
    start_s3,
    wait_ready,
)

__all__ = ["BUCKET", "LOCAL_KEYS", "REGION", "moto_endpoint"]


@contextmanager
def moto_endpoint(logs: Path) -> Iterator[tuple[str, psutil.Process]]:
    """(the endpoint's URL, its process); ``logs``: where the server writes its log."""
    port = free_ports(1)[0]
    upstream = f"http://127.0.0.1:{port}"
    server = start_s3(port, logs)
    try:
        wait_ready({"s3": (server, lambda: answers(upstream))}, logs, timeout_s=60)
        create_bucket(upstream)
        yield upstream, psutil.Process(server.pid)
    finally:
        terminate({server})
