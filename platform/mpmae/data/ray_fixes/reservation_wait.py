"""Lets every Ray Data execution (every epoch) start on the CPUs it is given.

Ray 2.60's streaming executor learns what it may use from its cluster autoscaler, which
asks the autoscaling coordinator actor without blocking: the first answer of a new
execution is the empty cache of a request still in flight, and the executor keeps that
answer for a second (``GLOBAL_LIMITS_UPDATE_INTERVAL_S``). With no budget only its
liveness rule runs tasks, one at a time, so the first second of every epoch reads on one
worker whatever the CPUs it was given (measured: docs/ray-2.60.md). This callback waits
before the execution starts until that first answer is in, a round trip of a few ms.
"""

from __future__ import annotations

import time

from ray.data._internal.execution.execution_callback import ExecutionCallback

POLL_S = 0.002
MAX_WAIT_S = 0.5  # a coordinator that is slower than this answers on the executor's refresh


class ReservationWait(ExecutionCallback):
    """An execution callback (``DataContext.custom_execution_callback_classes``)."""

    def before_execution_starts(self, executor) -> None:
        # Private in Ray 2.60; another version without it has nothing to wait for here.
        autoscaler = getattr(executor, "_cluster_autoscaler", None)
        if autoscaler is None:
            return
        deadline = time.monotonic() + MAX_WAIT_S
        while autoscaler.get_total_resources().is_zero() and time.monotonic() < deadline:
            time.sleep(POLL_S)

