"""Every workaround for Ray internals, in one place, safe to upgrade Ray under.

Each fix was written and measured against Ray 2.60 (docs/ray-2.60.md). Version-bound fixes
turn off on another Ray minor; every private Ray name is imported through
:mod:`mpmae.ray_fixes.guard`, so a Ray that moved one runs without that fix and warns once.
``python -c "import mpmae.ray_fixes as f; print(f.status())"`` lists which are on.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from mpmae.ray_fixes.block_size import BLOCK_SIZE
from mpmae.ray_fixes.cleaner_check import CLEANER_CHECK
from mpmae.ray_fixes.cleaner_check import PRIVATE_NAMES as CLEANER_NAMES
from mpmae.ray_fixes.cluster_maxima import CLUSTER_MAXIMA, STATE
from mpmae.ray_fixes.embedded_ray import IDLE_WORKERS
from mpmae.ray_fixes.guard import WRITTEN_FOR, ray_minor
from mpmae.ray_fixes.quiet_workers import (
    QUIET_DRIVER,
    QUIET_WORKERS,
    RAY_DATA_LOGGING,
    TRAIN_CONTEXT,
)
from mpmae.ray_fixes.stream_callbacks import CALLBACK_BASE, RESERVATION_WAIT, SPIN_GUARD
from mpmae.ray_fixes.train_sigint import TRAIN_SIGINT
from mpmae.ray_fixes.upload_walk import PRIVATE_NAMES as UPLOAD_NAMES
from mpmae.ray_fixes.upload_walk import UPLOAD_WALK


@dataclass(frozen=True)
class Fix:
    name: str
    what: str
    private_names: tuple[tuple[str, str], ...] = ()
    version_bound: bool = False  # relies on 2.60's behaviour, not only on its names


FIXES = (
    Fix(SPIN_GUARD, "Ray Data's executor does not spin while training is backpressured",
        (CALLBACK_BASE,), version_bound=True),
    Fix(RESERVATION_WAIT, "every epoch starts on its CPUs, not on one read task",
        (CALLBACK_BASE,), version_bound=True),
    Fix(IDLE_WORKERS, "the embedded Ray keeps idle task workers", version_bound=True),
    Fix(BLOCK_SIZE, "blocks pass on as read, unmerged and unsliced", version_bound=True),
    Fix(QUIET_WORKERS, "Ray-internal warnings and per-epoch INFO lines off the console",
        (RAY_DATA_LOGGING,)),
    Fix(CLEANER_CHECK, "Ray Train's placement-group cleaner asks the embedded Ray, not another",
        CLEANER_NAMES),
    Fix(QUIET_DRIVER, "Ray Train's per-report metric dumps off the console", (TRAIN_CONTEXT,)),
    Fix(UPLOAD_WALK, "`mpmae submit` lists and measures what Ray will upload", UPLOAD_NAMES),
    Fix(CLUSTER_MAXIMA, "sweeps see an autoscaler's published maxima", (STATE,)),
    Fix(TRAIN_SIGINT, "a first Ctrl-C during pretraining checkpoints the step, not Ray's abort",
        version_bound=True),
)


def status() -> dict[str, str]:
    """Each fix: ``on``, or ``off: why`` on the installed Ray (warns about nothing)."""
    return {fix.name: _why_off(fix) or "on" for fix in FIXES}


def _why_off(fix: Fix) -> str | None:
    if fix.version_bound and ray_minor() != WRITTEN_FOR:
        return f"off: written for Ray {WRITTEN_FOR}, this is Ray {ray_minor()}"
    for module, name in fix.private_names:
        try:
            getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            return f"off: this Ray has no {module}.{name}"
    return None
