"""The resource maxima an autoscaler publishes in the GCS (KubeRay's v2 autoscaler does),
which Ray Train also reads to size worker groups; read through a private Ray 2.60 API, so
another Ray falls back to the cluster launcher config alone."""

from __future__ import annotations

from mpmae.ray_fixes.guard import private

CLUSTER_MAXIMA = "cluster_maxima"
STATE = ("ray._private.state", "state")


def published_maxima() -> dict[str, float]:
    """Per resource, the autoscaler's published maximum; empty where none is known."""
    state = private(*STATE, CLUSTER_MAXIMA)
    if state is None:
        return {}
    return state.get_max_resources_from_cluster_config() or {}
