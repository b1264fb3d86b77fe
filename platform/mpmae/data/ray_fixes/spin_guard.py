"""Stops Ray Data's scheduling loop from spinning while the trainer is busy.

Ray 2.60's streaming executor blocks in ``ray.wait`` only while tasks are running. When a
training split is backpressured (the trainer has not yet taken the blocks already read)
and no read task runs, every step of its loop returns at once: the SplitCoordinator then
spins on a CPU until the trainer catches up, and on a small machine that CPU is taken from
training during the first steps of every epoch larger than a few read tasks. This callback
notices back-to-back steps that did not wait and sleeps, longer the longer the spin lasts
(a fixed short pause still left much of the spin). Measured figures: docs/ray-2.60.md.
"""

from __future__ import annotations

import time

from ray.data._internal.execution.execution_callback import ExecutionCallback

SPIN_STEP_S = 0.002  # a step that returns this fast did not wait for any task
MIN_BACKOFF_S, MAX_BACKOFF_S = 0.005, 0.05  # a read task runs for 100s of ms


class SpinGuard(ExecutionCallback):
    """An execution callback (``DataContext.custom_execution_callback_classes``)."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self._backoff = MIN_BACKOFF_S

    def on_execution_step(self, executor) -> None:
        if time.perf_counter() - self._last < SPIN_STEP_S:
            time.sleep(self._backoff)
            self._backoff = min(2 * self._backoff, MAX_BACKOFF_S)
        else:
            self._backoff = MIN_BACKOFF_S
        self._last = time.perf_counter()

