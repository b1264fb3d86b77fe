"""Stop exactly the processes a script started: by pid, each checked against its start time.

Never by name and never with `ray stop`, which stops every Ray process of the user,
including clusters that have nothing to do with the script. A recorded pid counts only
while /proc still shows the same start time, so a reused pid is never signalled.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Proc:
    """A process as it was seen: its pid and its start time (clock ticks since boot)."""

    pid: int
    started: int


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat fields after the command name (which may contain spaces)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def identify(pid: int) -> Proc | None:
    """The live process with this pid now (None if gone or a zombie)."""
    fields = _stat_fields(pid)
    if not fields or fields[0] == "Z":
        return None
    return Proc(pid, int(fields[19]))


def is_running(proc: Proc) -> bool:
    """Whether ``proc`` is still that very process."""
    return identify(proc.pid) == proc


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def descendants(pid: int) -> set[int]:
    """Pids of the children of ``pid``, their children, and so on."""
    children: dict[int, list[int]] = {}
    for child in _pids():
        fields = _stat_fields(child)
        if fields:
            children.setdefault(int(fields[1]), []).append(child)
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def naming(text: str) -> set[int]:
    """Pids whose command line contains ``text`` (a folder unique to one run)."""
    found = set()
    for pid in _pids():
        with suppress(OSError):
            if pid != os.getpid() and text in Path(f"/proc/{pid}/cmdline").read_text(
                    errors="replace"):
                found.add(pid)
    return found


def identify_all(pids: Iterable[int]) -> set[Proc]:
    return {proc for proc in map(identify, pids) if proc}


def _signal(procs: Iterable[Proc], sig: signal.Signals) -> None:
    for proc in procs:
        if is_running(proc):
            with suppress(ProcessLookupError):
                os.kill(proc.pid, sig)


def _wait_gone(procs: set[Proc], timeout_s: float) -> set[Proc]:
    deadline = time.monotonic() + timeout_s
    while (left := {p for p in procs if is_running(p)}) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def terminate(procs: set[Proc], timeout_s: float = 10) -> set[Proc]:
    """SIGTERM every process in ``procs``, SIGKILL those still running ``timeout_s``
    later; returns the ones that survived even that (normally none)."""
    _signal(procs, signal.SIGTERM)
    left = _wait_gone(procs, timeout_s)
    _signal(left, signal.SIGKILL)
    return _wait_gone(left, 5)


def stop(leader: Proc, others: set[Proc], grace_s: float = 20) -> set[Proc]:
    """SIGTERM ``leader`` alone and give it ``grace_s`` to shut its own children down
    (as `ray start --block` does), then :func:`terminate` whatever is left."""
    _signal([leader], signal.SIGTERM)
    _wait_gone({leader}, grace_s)
    return terminate({p for p in others | {leader} if is_running(p)})
