"""How many trials fit at once: the cluster's resources (autoscaler maxima included) over
one trial's demand, leaving the data CPUs free."""

from __future__ import annotations

import math

from mpmae.config import ConfigError
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


def cluster_capacity() -> dict[str, float]:
    """Per resource, the larger of what the cluster has now and what its autoscaler may
    add (Ray Train reads the same maxima to size worker groups on autoscaling clusters)."""
    import ray
    from ray._private.state import state

    capacity = dict(ray.cluster_resources())
    for key, value in (state.get_max_resources_from_cluster_config() or {}).items():
        capacity[key] = max(capacity.get(key, 0), value)
    return capacity


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
