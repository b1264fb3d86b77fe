"""The stream's CPU per delivered tile by stage, from what one epoch measured.

Every CPU second of the session lands in exactly one stage, and the stages with ``idle``
add up to cores × wall:

- ``decode``, ``shuffle_copy``: the read tasks' own clock
  (:mod:`mpmae.data.stream.stage_clock`): Parquet → Arrow (reading the bytes from the
  store included: from S3 the HTTP client's CPU), and the scatter (and crop) into the
  block;
- ``object_store``: the rest of the Ray workers' CPU (outside the task body: putting blocks
  into the object store, Ray's task and generator machinery, the workers' idle polling)
  plus the Ray daemons' (raylet with its plasma store, GCS, agents);
- ``consumer``: the driver's CPU less the normaliser's: Ray Data's executor and
  iterator threads, fetching and batching blocks, the collate step, this loop;
- ``normaliser``: the Normaliser's thread CPU (on the GPU in real use);
- ``s3_endpoint``, ``s3_proxy``: the benchmark's own S3 server and the latency proxy in
  front of it (zero from a local folder, or without a proxy; on other machines in real use);
- ``idle``: cores × wall − the session's CPU. CPU that processes outside the session took
  (another job on the machine) and that session processes took before ending (counted in
  ``ended``) is in it too: ``idle_machine`` is what the machine itself counted as idle, and
  ``idle_other`` the rest.
"""

from __future__ import annotations

import psutil

STAGES = ("decode", "shuffle_copy", "object_store", "consumer", "normaliser", "s3_endpoint",
          "s3_proxy", "idle")


def machine_idle_s() -> float:
    """The machine's idle CPU seconds so far, all cores (idle + iowait)."""
    t = psutil.cpu_times()
    return t.idle + getattr(t, "iowait", 0.0)


def breakdown(roles_s: dict[str, float], clock: dict[str, float], normaliser_s: float,
              main_thread_s: float, machine_idle: float, wall_s: float, cores: int,
              tiles: int) -> dict:
    """Core-ms per delivered tile by stage. ``roles_s``: the session's CPU seconds by role
    (driver, ray_workers, ray_daemons, s3_endpoint); ``clock``: the read tasks' stage seconds;
    ``main_thread_s``: the consumer thread's CPU, normaliser included."""
    used = sum(roles_s.values())
    seconds = {
        "decode": clock["decode"],
        "shuffle_copy": clock["shuffle_copy"],
        "object_store": roles_s["ray_workers"] + roles_s["ray_daemons"]
        - clock["decode"] - clock["shuffle_copy"],
        "consumer": roles_s["driver"] - normaliser_s,
        "normaliser": normaliser_s,
        "s3_endpoint": roles_s["s3_endpoint"],
        "s3_proxy": roles_s.get("s3_proxy", 0.0),
        "idle": cores * wall_s - used,
    }
    parts = {
        "object_store_daemons": roles_s["ray_daemons"],
        "object_store_workers": seconds["object_store"] - roles_s["ray_daemons"],
        "consumer_main_thread": main_thread_s - normaliser_s,
        "consumer_other_threads": roles_s["driver"] - main_thread_s,
        "idle_machine": machine_idle,
        "idle_other": seconds["idle"] - machine_idle,
    }
    out = {k: _per_tile(s, tiles) for k, s in seconds.items()}
    out["sum"] = round(sum(out.values()), 3)
    out["cores_x_wall"] = _per_tile(cores * wall_s, tiles)
    out["stream_without_normaliser"] = round(
        out["sum"] - out["normaliser"] - out["s3_endpoint"] - out["s3_proxy"] - out["idle"], 3)
    out["parts"] = {k: _per_tile(s, tiles) for k, s in parts.items()}
    out["tiles_read"] = int(clock["tiles"])
    return out


def _per_tile(seconds: float, tiles: int) -> float:
    return round(1e3 * seconds / max(tiles, 1), 3)
