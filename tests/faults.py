"""Real faults for tests of what survives them: a full disk for a child process, and the S3
weather proxy (infra/local/s3_proxy.py, which can fail writes) loaded by path."""

from __future__ import annotations

import importlib.util
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

TESTS = Path(__file__).resolve().parent


def s3_proxy() -> ModuleType:
    """infra/local/s3_proxy.py (infra/ is no package: its scripts run as files)."""
    spec = importlib.util.spec_from_file_location("infra_modules",
                                                  TESTS / "infra" / "infra_modules.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load("infra/local/s3_proxy.py")


def run_on_a_full_disk(script: str, *args: str, max_file_bytes: int,
                       timeout_s: float = 120) -> subprocess.CompletedProcess:
    """Run ``script`` (``args`` in its sys.argv) in a fresh Python whose files cannot grow
    past ``max_file_bytes``: a write beyond fails with EFBIG ("File too large"), as a full
    disk fails it with ENOSPC. RLIMIT_FSIZE binds root too, where a read-only folder would
    not."""

    def limit() -> None:  # in the child, before exec: both survive it
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the writer
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-c", script, *args], preexec_fn=limit, env=env,
                          capture_output=True, text=True, timeout=timeout_s, check=False)
