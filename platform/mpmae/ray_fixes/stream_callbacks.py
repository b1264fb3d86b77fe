"""Two fixes for Ray 2.60's streaming executor that every mpmae stream carries, as Ray Data
execution callbacks (``DataContext.custom_execution_callback_classes``).

- :class:`SpinGuard`: the executor blocks in ``ray.wait`` only while tasks run. When a
  training split is backpressured (the trainer has not yet taken the blocks already read)
  and no read task runs, every step of its loop returns at once: the SplitCoordinator then
  spins on a CPU until the trainer catches up, and on a small machine that CPU is taken from
  training during the first steps of every epoch. The guard notices back-to-back steps that
  did not wait and sleeps, longer the longer the spin lasts (a fixed short pause still left
  much of the spin).
- :class:`ReservationWait`: the executor learns what it may use from its cluster autoscaler,
  which asks the autoscaling coordinator actor without blocking: the first answer of a new
  execution is the empty cache of a request still in flight, kept for a second
  (``GLOBAL_LIMITS_UPDATE_INTERVAL_S``). With no budget only its liveness rule runs tasks,
  one at a time, so the first second of every epoch reads on one worker. The callback
  waits before the execution starts until that first answer is in (a few ms).

Measured figures: docs/ray-2.60.md.
"""

from __future__ import annotations

import time

from mpmae.ray_fixes.guard import private, version_ok

SPIN_GUARD, RESERVATION_WAIT = "spin_guard", "reservation_wait"
CALLBACK_BASE = ("ray.data._internal.execution.execution_callback", "ExecutionCallback")
_CALLBACK = private(*CALLBACK_BASE, f"{SPIN_GUARD}, {RESERVATION_WAIT}")
# Without Ray's base class the callbacks are plain classes that are never installed.
_BASES = (_CALLBACK,) if _CALLBACK else ()

SPIN_STEP_S = 0.002  # a step that returns this fast did not wait for any task
MIN_BACKOFF_S, MAX_BACKOFF_S = 0.005, 0.05  # a read task runs for 100s of ms
POLL_S = 0.002
MAX_WAIT_S = 0.5  # a coordinator that is slower than this answers on the executor's refresh


class SpinGuard(*_BASES):
    """Sleeps, doubling up to :data:`MAX_BACKOFF_S`, after steps that did not wait."""

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


class ReservationWait(*_BASES):
    """Waits (at most :data:`MAX_WAIT_S`) for the execution's first resource budget."""

    def before_execution_starts(self, executor) -> None:
        autoscaler = getattr(executor, "_cluster_autoscaler", None)  # private in Ray 2.60
        if autoscaler is None:
            return
        deadline = time.monotonic() + MAX_WAIT_S
        while autoscaler.get_total_resources().is_zero() and time.monotonic() < deadline:
            time.sleep(POLL_S)


CALLBACKS = {SPIN_GUARD: SpinGuard, RESERVATION_WAIT: ReservationWait}


def active_callbacks() -> dict[str, type]:
    """The callbacks this Ray can carry: its version the one they were written for, and
    its ExecutionCallback where it was."""
    if not _CALLBACK:
        return {}
    return {name: cls for name, cls in CALLBACKS.items() if version_ok(name)}


def install(context) -> None:
    """Add the active callbacks to a Ray ``DataContext`` once; datasets made after it
    carry them. Add them to a Ray Data pipeline of yours the same way."""
    for callback in active_callbacks().values():
        if callback not in context.custom_execution_callback_classes:
            context.custom_execution_callback_classes.append(callback)
