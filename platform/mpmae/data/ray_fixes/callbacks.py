"""The execution callbacks that every stream carries: fixes for Ray 2.60's streaming executor.

- :class:`~mpmae.data.ray_fixes.spin_guard.SpinGuard`: its scheduling loop stops spinning while a
  training split is backpressured;
- :class:`~mpmae.data.ray_fixes.reservation_wait.ReservationWait`: every execution (epoch) starts on
  the CPUs it is given, not on one read task at a time.
"""

from __future__ import annotations

from mpmae.data.ray_fixes.reservation_wait import ReservationWait
from mpmae.data.ray_fixes.spin_guard import SpinGuard

CALLBACKS = (SpinGuard, ReservationWait)


def install(context) -> None:
    """Add the callbacks to a Ray ``DataContext`` once; datasets made after it carry them."""
    for callback in CALLBACKS:
        if callback not in context.custom_execution_callback_classes:
            context.custom_execution_callback_classes.append(callback)
