"""Preemption without lost work: a notice → every worker finishes its step, rank 0 writes a
checkpoint at it, and the command exits 75 saying so; the same command resumes there.

A notice comes from any of:
- a signal to the command (SIGTERM, as a scheduler or a spot node's shutdown sends, or the
  first Ctrl-C): the driver writes ``NOTICE_FILE`` into the run folder, which rank 0 polls;
- ``train.preemption_notice``: a file that appears, or an http(s) URL that answers 200 (a
  cloud's instance metadata announces a spot reclaim that way), polled on every worker's
  node, since such a notice concerns one node only.

Ranks agree on it at each optimizer step (one all-reduce of a flag), so all of them stop
at the same step and the report that carries the checkpoint stays a barrier for all.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from mpmae.storage import Location

NOTICE_FILE = "preemption-notice"
POLL_S = 1.0  # how often a notice is looked for; part of the bound from notice to exit
URL_TIMEOUT_S = 2.0


def notice_source_problem(source: str) -> str | None:
    """Why ``train.preemption_notice`` cannot be polled, or None."""
    if "://" in source and not source.startswith(("http://", "https://", "file://")):
        return "must be a file path, file://, http:// or https:// URL"
    return None


def _url_says_notice(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT_S) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False  # 404 (no notice yet), or metadata that is not there: no notice


def _file_exists(path: str) -> bool:
    return os.path.exists(path.removeprefix("file://"))


class NoticeWatcher:
    """Polls the notice sources on a daemon thread; ``noticed`` once any has spoken."""

    def __init__(self, configured: str, run_dir: Location | None) -> None:
        self._checks = []
        if configured:
            is_url = configured.startswith(("http://", "https://"))
            self._checks.append((_url_says_notice if is_url else _file_exists, configured))
        if run_dir is not None:  # rank 0 only: one poll of the shared folder is enough
            notice = run_dir.join(NOTICE_FILE)
            self._checks.append((lambda _: _exists(notice), notice.uri))
        self._noticed = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True, name="preemption")
        if self._checks:
            self._thread.start()

    @property
    def noticed(self) -> bool:
        return self._noticed.is_set()

    def close(self) -> None:
        self._stop.set()

    def _poll(self) -> None:
        while True:  # looked for at once: a notice there from the start stops the first step
            if any(check(source) for check, source in self._checks):
                self._noticed.set()
                return
            if self._stop.wait(POLL_S):
                return


def _exists(location: Location) -> bool:
    try:
        return location.exists()
    except OSError:
        return False  # a store that blips is not a notice


def agreed(noticed: bool) -> bool:
    """True on every rank when any rank has a notice (a collective: all ranks call it)."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_world_size() == 1:
        return noticed
    flag = torch.tensor([1 if noticed else 0], dtype=torch.int32)
    if dist.get_backend() == "nccl":
        flag = flag.cuda()
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


class Notice:
    """Whether a signal gave the notice while :func:`notice_on_signals` was in force."""

    def __init__(self) -> None:
        self.signals: list[int] = []

    @property
    def given(self) -> bool:
        return bool(self.signals)


@contextmanager
def notice_on_signals(*run_dirs: Location) -> Iterator[Notice]:
    """While the block runs, SIGTERM or a first SIGINT writes the notice file into each of
    ``run_dirs`` (the run's folder, or a sweep's trial folders; their rank 0 stops at the
    next step); a second SIGINT interrupts at once. Notices left by an earlier preemption
    are removed first, so a resume runs on."""
    notices = [run_dir.join(NOTICE_FILE) for run_dir in run_dirs]
    for notice in notices:
        if notice.exists():
            notice.fs.delete_file(notice.path)
    received = Notice()

    def handler(signum: int, _frame) -> None:
        if received.given and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not received.given:
            print(f"\n{signal.Signals(signum).name}: finishing the current step and writing "
                  "a checkpoint (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)
            for notice in notices:
                notice.write_bytes_atomic(signal.Signals(signum).name.encode())
        received.signals.append(signum)

    if threading.current_thread() is not threading.main_thread():
        yield received  # only the main thread gets signals (a caller's own thread: none)
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
