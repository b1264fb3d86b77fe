"""How every fix reaches into Ray: by version check and guarded private imports.

Each fix was written against Ray's internals of one minor version (:data:`WRITTEN_FOR`).
On another version, or where a private name it needs has moved, the fix is off and says so
once (a warning), and the rest of mpmae runs as it would without it: never an ImportError
that takes ``pretrain`` or ``inspect`` with it.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from typing import Any

WRITTEN_FOR = "2.60"  # the Ray minor every fix here was written and measured against


def ray_minor() -> str:
    import ray

    return ".".join(ray.__version__.split(".")[:2])


@functools.cache
def version_ok(fix: str) -> bool:
    """True on the Ray minor the fixes were written for; else warn once and say no."""
    if ray_minor() == WRITTEN_FOR:
        return True
    warnings.warn(f"mpmae's Ray fix {fix!r} was written for Ray {WRITTEN_FOR} and this is Ray "
                  f"{ray_minor()}: it is off (mpmae works without it; see docs/ray-2.60.md)",
                  stacklevel=2)
    return False


@functools.cache
def private(module: str, name: str, fix: str) -> Any | None:
    """``module.name`` of Ray, or None (warned once) where this Ray lacks it."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        warnings.warn(f"this Ray has no {module}.{name}: mpmae's Ray fix {fix!r} is off "
                      "(mpmae works without it; see docs/ray-2.60.md)", stacklevel=2)
        return None


def reset() -> None:
    """Forget what was checked (tests that change what Ray offers)."""
    version_ok.cache_clear()
    private.cache_clear()
