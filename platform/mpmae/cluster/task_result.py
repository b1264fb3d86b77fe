"""A Ray task's result, or the error the task itself raised."""

from __future__ import annotations

from typing import Any


def task_result(ref: Any) -> Any:
    """``ray.get(ref)``; a failed task re-raises its own error (which names the file or
    field) instead of Ray's wrapper around it."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        raise e.cause if isinstance(e.cause, Exception) else e from None
