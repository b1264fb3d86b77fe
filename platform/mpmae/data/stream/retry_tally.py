"""The storage retries of a stream's read tasks, summed where a training run can log them.

:mod:`mpmae.storage` counts the operations it tried again per process, and a read task runs
in some Ray worker process, often on another node: the training workers never see those
counts, yet the shard reads are where a run meets S3 throttling most. So every read task
sends what it added to a small actor that the run's driver starts on its own node (a lost
worker node does not take the tally with it), and rank 0 adds the tally to the training
workers' own counts at every report (``storage_retries/<kind>``).

A task sends only when a count changed (retries are rare): a calm stream pays a dict
compare per block, no messages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mpmae.storage import retry_counts

TOTAL_TIMEOUT_S = 5.0  # rank 0 waits this long for the sum at a report, then logs the last


class _Tally:
    """The actor: the retries the stream's processes sent, by kind."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, counts: dict[str, int]) -> None:
        self.counts.update(counts)

    def total(self) -> dict[str, int]:
        return dict(self.counts)


@dataclass(frozen=True)
class RetryTally:
    """A handle on the tally actor; it travels into read tasks and training workers."""

    actor: Any

    @classmethod
    def start(cls) -> RetryTally:
        """A new tally on this process's node, taking no CPU (it must never wait for one)."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(),
                                              soft=False)
        actor = ray.remote(num_cpus=0)(_Tally).options(scheduling_strategy=here).remote()
        return cls(actor)

    def send_since(self, before: dict[str, int]) -> dict[str, int]:
        """Send this process's retries counted since ``before`` (a ``retry_counts()``), if
        there were any; returns the counts now."""
        now = retry_counts()
        if now != before:
            self.actor.add.remote({kind: now[kind] - before.get(kind, 0) for kind in now})
        return now

    def sender(self) -> Callable[[], None]:
        """A function that sends this process's retries counted since the last call (or
        since now, for the first): call it after each piece of work."""
        last = retry_counts()

        def send() -> None:
            nonlocal last
            last = self.send_since(last)

        return send

    def total(self, timeout_s: float = TOTAL_TIMEOUT_S) -> dict[str, int] | None:
        """The retries sent so far, by kind; None when the tally does not answer in time."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        try:
            return ray.get(self.actor.total.remote(), timeout=timeout_s)
        except (GetTimeoutError, RayActorError):
            return None
