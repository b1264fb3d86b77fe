"""A Ray task's result, or the error the task itself raised; the error of ours behind a
failed Ray Train run."""

from __future__ import annotations

from typing import Any

from mpmae.errors import MpmaeError


def task_result(ref: Any) -> Any:
    """``ray.get(ref)``; a failed task re-raises its own error (which names the file or
    field) instead of Ray's wrapper around it."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        raise e.cause if isinstance(e.cause, Exception) else e from None


def our_error(error: BaseException) -> MpmaeError | None:
    """The first of our errors behind a Ray Train failure: in a worker's failure (Ray Train
    keeps one per rank) or down the chain of causes; None if there is none (torch, CUDA, a
    bug)."""
    failures = list(getattr(error, "worker_failures", {}).values())
    for failure in [*failures, error]:
        current: BaseException | None = failure
        while current is not None:
            # A RayTaskError keeps the exception the worker raised as ``cause``.
            for candidate in (getattr(current, "cause", None), current):
                if isinstance(candidate, MpmaeError):
                    return candidate
            current = current.__cause__
    return None
