"""How every mpmae command that runs Ray work reaches Ray: a cluster's address, or a private
local Ray with the embedded defaults. (`mpmae submit` runs no Ray work itself: it hands the
command to a cluster's Job API, :mod:`mpmae.cluster.submit`.)"""

from __future__ import annotations

import os
from collections.abc import Mapping

from mpmae.config import ConfigError, cache_dir
from mpmae.ray_fixes.embedded_ray import embedded_system_config
from mpmae.ray_fixes.quiet_workers import embedded_runtime_env


def on_a_cluster(address: str) -> bool:
    """True when the command runs against a cluster (an address, or inside a Ray Job)."""
    return bool(address or os.environ.get("RAY_ADDRESS"))


def require_shared_paths(address: str, paths: Mapping[str, str]) -> None:
    """On a cluster, each config key in ``paths`` must name a place every node shares: an
    empty one would mean this node's cache folder, which the other nodes never see (a
    MPMAE_HOME set on purpose counts as the user's choice of a shared folder)."""
    if not on_a_cluster(address) or os.environ.get("MPMAE_HOME"):
        return
    empty = [key for key, value in paths.items() if not value]
    if empty:
        raise ConfigError(
            f"on a cluster {' and '.join(empty)} must be set to an s3:// URI or a path every "
            "node shares (empty means this node's cache folder, which the workers cannot "
            "read); or set MPMAE_HOME to a shared folder", key=empty[0])


def connect(address: str = "") -> bool:
    """Connect to (or start) Ray; True if this call started it, so the caller stops it."""
    import ray

    if ray.is_initialized():
        return False
    if on_a_cluster(address):
        ray.init(address=address or None)
        return True
    # No dashboard, on purpose. Ray Train's placement-group cleaner finds "the" cluster's
    # state API by scanning this machine; with another Ray here that has a dashboard it
    # asked that one, was told our controller is gone, and removed a healthy run's
    # placement group (seen in Ray 2.60). Without ours it only logs a warning, once a
    # second, which our workers hide (mpmae.ray_fixes.quiet_workers).
    # Idle task workers are kept (mpmae.ray_fixes.embedded_ray).
    # address="local": a new Ray of our own even when the user runs one here (or one left
    # its address in the temp folder's ray/ when it stopped), which a bare ray.init() would
    # attach to — refusing our _system_config, or waiting on a dead address.
    ray.init(address="local", include_dashboard=False,
             runtime_env=embedded_runtime_env(cache_dir()),
             _system_config=embedded_system_config())
    return True
