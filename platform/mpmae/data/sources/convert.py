"""``mpmae data convert``: the official MMEarth release (HDF5 + JSON) → tile shards.

Each split's rows are permuted with a seeded RNG and cut into shard-sized groups, so the
shards are shuffled when written and readers need no global shuffle. One group is one job:
read its rows from the HDF5 (sorted, for locality), put them back in permuted order and
publish one whole shard atomically. Jobs run as Ray tasks, a bounded number in flight, or
in-process. A job's shard name and tiles depend only on the release, split, limit, seed and
shard size, so a re-run skips shards that already hold exactly their tiles and writes the
rest. ``dataset.json`` is written last: a conversion that fails leaves none.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

import mpmae
from mpmae.config import ConfigError
from mpmae.data.format.band_stats import BandStats, stats_key
from mpmae.data.format.manifest import MANIFEST_NAME, Manifest, ShardInfo, write_manifest
from mpmae.data.format.schema import presence_bands
from mpmae.data.format.shards import open_shard, shard_is_complete, shard_name, write_shard
from mpmae.data.format.tiles import tiles_to_table
from mpmae.data.sources.config import ConvertConfig, Split
from mpmae.data.sources.mmearth_h5 import (
    CONVERTED,
    NOT_CONVERTED,
    Release,
    ReleaseError,
    check_layout,
    find_release,
    read_metadata,
    read_tiles,
    tile_presence,
)
from mpmae.modalities import MODALITIES, S2_LEVELS
from mpmae.storage import Location, StorageOptions, resolve

CITATION = (
    "Vishal Nedungadi, Ankit Kariryaa, Stefan Oehmcke, Serge Belongie, Christian Igel, "
    "Nico Lang. MMEarth: Exploring Multi-Modal Pretext Tasks For Geospatial Representation "
    "Learning. ECCV 2024. arXiv:2405.02771"
)
LICENSE = (
    "MMEarth is licensed under CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/). "
    "This dataset is a format conversion of it by mpmae (one-hot biome/ecoregion stored as "
    f"class indices; cloud products dropped). Attribute it by citing: {CITATION}"
)
NEUTRAL_STATS = ("mean", 0.0), ("std", 1.0), ("min", 0.0), ("max", 0.0)

Progress = Callable[[str], None]


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


def convert_mmearth(
    src: str,
    dest: str,
    *,
    split: Split | None = ConvertConfig.split,
    limit: int | None = ConvertConfig.limit,
    shard_mb: float = ConvertConfig.shard_mb,
    seed: int = ConvertConfig.seed,
    parallel: bool = ConvertConfig.parallel,
    num_workers: int | None = ConvertConfig.num_workers,
    storage: StorageOptions | None = None,
    progress: Progress = print,
) -> Manifest:
    """Convert the MMEarth release at ``src`` (folder or .h5) into tile shards at ``dest``.

    The options are :class:`ConvertConfig`'s (defaults and meaning there); a bad one raises
    a ConfigError naming it. Raises :class:`ReleaseError` (a ``DatasetError``) for a missing
    or damaged release.
    """
    cfg = ConvertConfig(split=split, limit=limit, shard_mb=shard_mb, seed=seed,
                        parallel=parallel, num_workers=num_workers)
    cfg.validate()
    started = time.perf_counter()
    release = find_release(src, storage)
    root = resolve(dest, storage)
    selected = _select_splits(release, split, limit)
    with release.open_h5() as h5:
        num_tiles, tile_size = check_layout(h5, release.h5)
        _check_rows(selected, num_tiles, release)
        jobs = _plan(h5, release, selected, _tiles_per_shard(tile_size, shard_mb), seed)
    published = _published_stats(release)
    progress(f"{release.file_names['h5']}: {num_tiles} tiles of {tile_size}px; converting "
             + ", ".join(f"{k} {len(v)}" for k, v in selected.items())
             + f" tiles into {len(jobs)} shards at {root.uri}")
    _retract_manifest(root, progress)
    ctx = JobContext(release, root.uri, root.options, tile_size)
    results = _run(jobs, ctx, parallel, num_workers, _reporter(progress, started))
    shards = {k: _split_shards(results, k) for k in selected}
    stats, stats_note = _complete_stats(published, release, root, shards, progress)
    manifest = Manifest(
        tile_size=tile_size,
        modalities=list(CONVERTED),
        stats=stats,
        splits=shards,
        provenance=_provenance(release, selected, cfg, stats_note),
        license=LICENSE,
    )
    write_manifest(root, manifest)
    _summary(results, root, started, progress)
    return manifest


def _select_splits(release: Release, split: str | None, limit: int | None) -> dict:
    """split → HDF5 rows (first ``limit`` of each, in splits.json order); empty splits dropped."""
    doc = release.read_json("splits")
    if not isinstance(doc, dict) or not all(isinstance(v, list) for v in doc.values()):
        raise ReleaseError(f"{release.splits} should map split names to lists of row indices")
    if split is not None and split not in doc:
        raise ConfigError(f"split '{split}' is not in {release.splits}; choose one of "
                          f"{sorted(doc)}, or leave the split out to convert them all")
    names = [split] if split is not None else list(doc)
    try:
        selected = {n: np.asarray(doc[n][:limit], dtype=np.int64) for n in names if doc[n]}
    except (TypeError, ValueError):
        raise ReleaseError(f"{release.splits} should list integer row indices") from None
    if not selected:
        raise ReleaseError(f"{release.splits} lists no tiles for {names}: nothing to convert")
    return selected


def _check_rows(selected: dict[str, np.ndarray], num_tiles: int, release: Release) -> None:
    rows = np.concatenate(list(selected.values()))
    if rows.min() < 0 or rows.max() >= num_tiles:
        raise ReleaseError(
            f"{release.splits} lists rows outside 0..{num_tiles - 1} of {release.h5}: "
            "the JSON files belong to another release variant"
        )
    if len(np.unique(rows)) != len(rows):
        raise ReleaseError(f"{release.splits} lists some rows twice (within or across splits)")


def _tiles_per_shard(tile_size: int, shard_mb: float) -> int:
    """Tiles whose raw stored bytes (native dtypes, presence vector) fill one shard."""
    per_tile = len(presence_bands(list(CONVERTED)))
    for name in CONVERTED:
        m = MODALITIES[name]
        values = m.num_bands * tile_size * tile_size if m.kind.is_pixel else max(1, m.num_bands)
        per_tile += values * np.dtype(m.dtype).itemsize
    return max(1, int(shard_mb * 2**20) // per_tile)


def _plan(h5, release: Release, selected: dict, per_shard: int, seed: int) -> list[ShardJob]:
    """Permute each split with ``seed`` and cut it into shard jobs of at most ``per_shard``."""
    rows = np.sort(np.concatenate(list(selected.values())))
    tile_ids, s2_types = read_metadata(h5, rows, release.h5)
    bands = _tile_bands(release, tile_ids)
    jobs = []
    for split, split_rows in selected.items():
        rng = np.random.default_rng([seed, zlib.crc32(split.encode())])
        permuted = split_rows[rng.permutation(len(split_rows))]
        groups = np.array_split(permuted, math.ceil(len(permuted) / per_shard))
        for index, group in enumerate(groups):
            at = np.searchsorted(rows, group)
            jobs.append(ShardJob(
                split=split, name=shard_name(split, index), rows=group,
                tile_ids=[tile_ids[i] for i in at], s2_types=[s2_types[i] for i in at],
                tile_bands=[bands.get(tile_ids[i]) for i in at],
            ))
    return jobs


def _tile_bands(release: Release, tile_ids: Iterable[str]) -> dict[str, dict]:
    """BANDS of the tiles being converted (the rest of tile_info.json is dropped at once)."""
    info = release.read_json("tile_info")
    if not isinstance(info, dict):
        raise ReleaseError(f"{release.tile_info} should map tile ids to tile descriptions")
    wanted = {}
    for tile_id in tile_ids:
        entry = info.get(tile_id)
        if isinstance(entry, dict) and isinstance(entry.get("BANDS"), dict):
            wanted[tile_id] = entry["BANDS"]
    return wanted


def _retract_manifest(root: Location, progress: Progress) -> None:
    """Remove an old dataset.json first: shards are about to change under it."""
    old = root.join(MANIFEST_NAME)
    if old.exists():
        old.fs.delete_file(old.path)
        progress(f"removed the previous {old.uri}; it is written again when all shards exist")


def _reporter(progress: Progress, started: float) -> Callable[[ShardResult], None]:
    def report(result: ShardResult) -> None:
        info = result.info
        if result.written:
            progress(f"  wrote {info.path}: {info.tiles} tiles, {info.bytes / 2**20:.1f} MB, "
                     f"{time.perf_counter() - started:.1f} s")
        else:
            progress(f"  kept {info.path}: already complete ({info.tiles} tiles)")
    return report


def _run(jobs, ctx: JobContext, parallel: bool, num_workers: int | None,
         report: Callable[[ShardResult], None]) -> list[ShardResult]:
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
    try:
        result = ray.get(done[0])
    except ray.exceptions.RayTaskError as e:
        # The task's own error says which file and dataset; the Ray wrapper adds only noise.
        raise e.cause if isinstance(e.cause, Exception) else e from None
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
    """The shard's entry if it exists with exactly the job's tiles in the job's order."""
    if not shard_is_complete(root, job.name, len(job.rows)):
        return None
    shard = open_shard(root, job.name)
    if shard.read(columns=["tile_id"]).column("tile_id").to_pylist() != job.tile_ids:
        return None
    loc = root.join(*job.name.split("/"))
    return ShardInfo(job.name, len(job.rows), loc.fs.get_file_info(loc.path).size)


def _split_shards(results: list[ShardResult], split: str) -> list[ShardInfo]:
    """The split's shards in index order (Ray returns them in completion order)."""
    infos = [r.info for r in results if r.info.path.startswith(f"{split}/")]
    return sorted(infos, key=lambda info: info.path)


def _published_stats(release: Release) -> dict[str, dict[str, list[float]]]:
    """The usable entries of band_stats.json, checked before any shard is written."""
    doc = release.read_json("band_stats")
    if not isinstance(doc, dict):
        raise ReleaseError(f"{release.band_stats} should map statistics keys to mean/std/...")
    return {k: _clean_stats(doc[k], k, m, release.band_stats)
            for k, m in _stats_keys().items() if k in doc}


def _complete_stats(published: dict, release: Release, root: Location,
                    shards: dict[str, list[ShardInfo]], progress: Progress):
    """``published`` plus the keys it lacks, computed from the written train tiles."""
    source = release.file_names["band_stats"]
    keys = _stats_keys()
    missing = {k: m for k, m in keys.items() if k not in published}
    if not missing:
        return published, {"from": source}
    over = shards["train"] if "train" in shards else [s for v in shards.values() for s in v]
    tiles = sum(s.tiles for s in over)
    progress(f"{source} has no statistics for {sorted(missing)}: computing them over "
             f"{tiles} converted {'train ' if 'train' in shards else ''}tiles")
    stats = {**published, **_compute_stats(root, over, missing)}
    unseen = sorted(k for k in missing if k not in stats)
    if unseen:
        progress(f"no tiles for {unseen}: stored neutral statistics (mean 0, std 1)")
        stats.update({k: {s: [v] * MODALITIES[keys[k]].num_bands for s, v in NEUTRAL_STATS}
                      for k in unseen})
    return stats, {"from": source, "computed": sorted(missing), "over_tiles": tiles}


def _stats_keys() -> dict[str, str]:
    """Statistics key → modality, for every converted modality that is normalised."""
    keys = {}
    for name in CONVERTED:
        if MODALITIES[name].kind.is_classification:
            continue
        for level in S2_LEVELS if name == "sentinel2" else (None,):
            keys[stats_key(name, level)] = name
    return keys


def _clean_stats(entry, key: str, modality: str, where: str) -> dict[str, list[float]]:
    """Check one band_stats.json entry; non-finite values become the neutral ones."""
    bands = MODALITIES[modality].num_bands
    out = {}
    for stat, neutral in NEUTRAL_STATS:
        values = entry.get(stat) if isinstance(entry, dict) else None
        if not isinstance(values, list) or len(values) != bands:
            raise ReleaseError(
                f"{where}: '{key}' needs a '{stat}' list of {bands} numbers (one per band); "
                "the file does not belong to this release or is damaged"
            )
        values = np.asarray([np.nan if v is None else v for v in values], np.float64)
        bad = ~np.isfinite(values) | ((values <= 0) if stat == "std" else False)
        out[stat] = np.where(bad, neutral, values).tolist()
    return out


def _compute_stats(root: Location, shards: list[ShardInfo], keys: dict[str, str]) -> dict:
    """BandStats over the written shards, reading only the columns the keys need."""
    stats = BandStats()
    modalities = sorted(set(keys.values()))
    for info in shards:
        for batch in open_shard(root, info.path).iter_batches(columns=["s2_type", *modalities]):
            levels = np.asarray(batch.column("s2_type").to_pylist())
            for name in modalities:
                stats.add(name, batch.column(name).to_numpy_ndarray(), levels)
    return {k: v for k, v in stats.result().items() if k in keys}


def _provenance(release: Release, selected: dict, cfg: ConvertConfig,
                stats_note: dict) -> dict:
    return {
        "source": {"dataset": "MMEarth", "files": release.file_names,
                   "tiles": {k: len(v) for k, v in selected.items()}},
        "converter": {"name": "mpmae data convert", "version": mpmae.__version__},
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        # The options that decide the shards' content; the key names predate ConvertConfig.
        "options": {"split": cfg.split, "limit": cfg.limit, "seed": cfg.seed,
                    "target_shard_mb": cfg.shard_mb},
        "not_converted": {n: "not in the mpmae modality catalogue" for n in NOT_CONVERTED},
        "biome_eco_region": "one-hot → class index (argmax); all-zero one-hot → nodata",
        "stats": stats_note,
        "citation": CITATION,
    }


def _summary(results: list[ShardResult], root: Location, started: float, progress) -> None:
    written = [r for r in results if r.written]
    tiles = sum(r.info.tiles for r in results)
    size = sum(r.info.bytes for r in results) / 2**20
    progress(f"converted {tiles} tiles into {len(results)} shards ({len(written)} written, "
             f"{len(results) - len(written)} already complete), {size:.1f} MB at {root.uri} "
             f"in {time.perf_counter() - started:.1f} s")
