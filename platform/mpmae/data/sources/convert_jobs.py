"""The jobs of ``mpmae data convert``: one shard each, run as Ray tasks or in-process.

A job's shard name and tiles depend only on the release, split, limit, seed and shard
size, so a re-run skips shards that already hold exactly their tiles and writes the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mpmae.cluster.task_result import task_result
from mpmae.data.format.manifest import ShardInfo
from mpmae.data.format.shards import decode_problem, parse_shard, shard_info, write_shard
from mpmae.data.format.tiles import tiles_to_table
from mpmae.data.sources.mmearth_h5 import Release, read_tiles, tile_presence
from mpmae.storage import Location, StorageOptions, resolve


@dataclass(frozen=True)
class ShardJob:
    """One shard to write: HDF5 rows in written order, with their metadata and BANDS."""

    split: str
    name: str
    rows: np.ndarray
    tile_ids: list[str]
    s2_types: list[str]
    tile_bands: list[dict | None]


@dataclass(frozen=True)
class JobContext:
    """What every job needs besides its rows (picklable: URIs, not filesystems)."""

    release: Release
    dest: str
    storage: StorageOptions
    tile_size: int


@dataclass(frozen=True)
class ShardResult:
    info: ShardInfo
    written: bool


def run_jobs(jobs, ctx: JobContext, parallel: bool, num_workers: int | None,
             report: Callable[[ShardResult], None]) -> list[ShardResult]:
    """Write every job's shard, as Ray tasks (``parallel``) or in this process; each
    result is reported as it comes."""
    if parallel:
        return _run_in_ray(jobs, ctx, num_workers, report)
    results = []
    for job in jobs:
        results.append(_write_job(job, ctx))
        report(results[-1])
    return results


def _run_in_ray(jobs, ctx: JobContext, num_workers: int | None, report) -> list[ShardResult]:
    """One task per shard, at most ``num_workers`` in flight; stops at the first failure."""
    import ray

    from mpmae.cluster.connect import connect

    started_here = connect()  # as every mpmae command: RAY_ADDRESS, else the embedded Ray
    try:
        task = ray.remote(num_cpus=1)(_write_job)
        in_flight = num_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        pending: dict = {}
        results: list[ShardResult] = []
        try:
            for job in jobs:
                if len(pending) >= in_flight:
                    results.append(_next_result(ray, pending, report))
                pending[task.remote(job, ctx)] = job
            while pending:
                results.append(_next_result(ray, pending, report))
        finally:
            for ref in pending:
                ray.cancel(ref)
        return results
    finally:
        if started_here:
            ray.shutdown()


def _next_result(ray, pending: dict, report) -> ShardResult:
    done, _ = ray.wait(list(pending), num_returns=1)
    del pending[done[0]]
    result = task_result(done[0])
    report(result)
    return result


def _write_job(job: ShardJob, ctx: JobContext) -> ShardResult:
    """Write one shard, unless one holding exactly these tiles is already there."""
    root = resolve(ctx.dest, ctx.storage)
    kept = _existing_shard(root, job)
    if kept is not None:
        return ShardResult(kept, written=False)
    order = np.argsort(job.rows)
    with ctx.release.open_h5() as h5:
        arrays = read_tiles(h5, job.rows[order], ctx.release.h5)
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    arrays = {k: v[back] for k, v in arrays.items()}
    table = tiles_to_table(arrays, job.tile_ids, job.s2_types, job.split, ctx.tile_size,
                           presence=tile_presence(arrays, job.tile_bands))
    return ShardResult(write_shard(root, job.name, table), written=True)


def _existing_shard(root: Location, job: ShardJob) -> ShardInfo | None:
    """The shard's entry if it exists, decodes with every page checksum intact and holds
    exactly the job's tiles in the job's order; else None (it is written again)."""
    loc = root.join(*job.name.split("/"))
    if not loc.exists():
        return None
    data = loc.read_bytes()
    if decode_problem(data) is not None:
        return None
    shard = parse_shard(data)
    if shard.read(columns=["tile_id"]).column("tile_id").to_pylist() != job.tile_ids:
        return None
    return shard_info(job.name, data)
