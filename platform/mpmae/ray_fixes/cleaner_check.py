"""Ray Train's placement-group cleaner asks the embedded Ray itself whether a run lives.

Ray Train 2.60 starts a detached cleaner actor beside every run; once a second it asks the
Ray state API whether the run's controller still lives, and removes the run's placement
group when it does not. The state API is a dashboard's, found through an address the
cleaner auto-detects by scanning this machine — and the embedded Ray has no dashboard
(:func:`mpmae.cluster.connect.connect`). So on a machine where a second Ray runs (a user's
own, a CI's), the scan finds two and raises ``ConnectionError: Found multiple active Ray
instances``, which the cleaner does not catch: its thread dies and its traceback reaches
the console (seen at 3cf9c63, docs/ray-2.60.md); alone, every check failed and warned.

In the embedded Ray's workers the check asks the GCS the worker is connected to, as every
Ray call of that worker does: no address to guess, no dashboard needed, never another
Ray's answer about our actor.
"""

from __future__ import annotations

import importlib

from mpmae.ray_fixes.guard import private

CLEANER_CHECK = "cleaner_check"
CLEANER_MODULE = "ray.train.v2._internal.execution.controller.placement_group_cleaner"
PRIVATE_NAMES = ((CLEANER_MODULE, "is_actor_alive"), ("ray._private.state", "actors"))


def install() -> None:
    """Point the cleaner's liveness check at this worker's own cluster (a worker process
    of the embedded Ray; no-op where this Ray lacks either name)."""
    if any(private(module, name, CLEANER_CHECK) is None for module, name in PRIVATE_NAMES):
        return
    importlib.import_module(CLEANER_MODULE).is_actor_alive = is_actor_alive


def is_actor_alive(actor_id: str, timeout: int) -> bool:
    """Whether the actor lives, as this process's GCS knows it (``timeout``: the state
    API's; a GCS call has its own)."""
    actors = private("ray._private.state", "actors", CLEANER_CHECK)
    info = actors(actor_id=actor_id)
    return bool(info) and info.get("State") != "DEAD"
