"""How many trials fit at once: the cluster's resources (autoscaler maxima included) over
one trial's demand, leaving the data CPUs free.

An autoscaling cluster at zero workers shows only its head. Its maxima come from the GCS
where the autoscaler publishes them (KubeRay's v2 autoscaler does), else from the cluster
launcher config the sweep names (``cluster_config``: ray-cluster.yaml, or the fake
cluster's config), whose node types times their ``max_workers`` bound what can appear.
"""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from mpmae.config import ConfigError
from mpmae.ray_fixes.cluster_maxima import published_maxima
from mpmae.tune.config import TuneConfig


def trial_demand(cfg: TuneConfig) -> dict[str, float]:
    """What one trial holds: its driver function plus its training workers."""
    s = cfg.pretrain.scaling
    demand = {"CPU": cfg.trial_cpus + s.num_workers * s.cpus_per_worker}
    if s.use_gpu:
        demand["GPU"] = s.num_workers
    if s.accelerator_resource:
        demand[s.accelerator_resource] = s.num_workers
    return demand


def cluster_capacity(cluster_config: str = "") -> dict[str, float]:
    """Per resource, the largest of what the cluster has now, what its autoscaler
    publishes as maxima (Ray Train reads the same to size worker groups) and what
    ``cluster_config``'s node types can add up to."""
    import ray

    capacity = dict(ray.cluster_resources())
    maxima = [published_maxima()]
    if cluster_config:
        maxima.append(launcher_maxima(yaml.safe_load(Path(cluster_config).read_text())))
    for found in maxima:
        for key, value in found.items():
            capacity[key] = max(capacity.get(key, 0), value)
    return capacity


def launcher_maxima(cluster: dict) -> dict[str, float]:
    """Resources of a cluster launcher config at full size: the head plus every worker
    type at its ``max_workers``."""
    totals: dict[str, float] = {}
    for name, node_type in cluster["available_node_types"].items():
        count = 1 if name == cluster["head_node_type"] else node_type.get("max_workers", 0)
        for key, value in node_type.get("resources", {}).items():
            totals[key] = totals.get(key, 0) + count * value
    return totals


def concurrent_trials(demand: dict[str, float], capacity: dict[str, float],
                      data_cpus: float, planned: int) -> int:
    """Trials that fit side by side, at most ``planned``; a resource no node offers is an
    error that says what to set."""
    fits = []
    for key, need in demand.items():
        if need <= 0:
            continue
        free = capacity.get(key, 0) - (data_cpus if key == "CPU" else 0)
        if free < need:
            raise ConfigError(
                f"one trial needs {need:g} {key} (+{data_cpus:g} CPU for data) but the "
                f"cluster offers {capacity.get(key, 0):g} {key}, autoscaling included: lower "
                "pretrain.scaling, or set max_concurrent_trials if nodes come from elsewhere",
                key="max_concurrent_trials")
        fits.append(math.floor(free / need + 1e-9))
    return max(1, min([planned, *fits]))
