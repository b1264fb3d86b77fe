"""The embedded Ray's system config: idle task workers are kept.

By default Ray 2.60 kills an idle worker after 1 s once a small machine has more workers
than CPUs, so every epoch's first read task started a fresh process (measured:
docs/ray-2.60.md). ``_system_config`` keys are Ray internals: another Ray gets none.
"""

from __future__ import annotations

from mpmae.ray_fixes.guard import version_ok

IDLE_WORKERS = "idle_workers"


def embedded_system_config() -> dict[str, int]:
    """``ray.init(_system_config=…)`` for the Ray that mpmae starts on one machine."""
    if not version_ok(IDLE_WORKERS):
        return {}
    return {"idle_worker_killing_time_threshold_ms": 600_000}
