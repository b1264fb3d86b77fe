"""``mpmae data convert``: the official MMEarth release (HDF5 + JSON) → tile shards.

Each split's rows are permuted with a seeded RNG and cut into shard-sized groups, so the
shards are shuffled when written and readers need no global shuffle. One group is one job:
read its rows from the HDF5 (sorted, for locality), put them back in permuted order and
publish one whole shard atomically. Jobs run as Ray tasks, a bounded number in flight, or
in-process. A job's shard name and tiles depend only on the release, split, limit, seed and
shard size, so a re-run skips shards that already hold exactly their tiles and writes the
rest. ``dataset.json`` is written last, atomically, over any older one, which stays
readable until then; a re-run with other options is refused unless overwriting
(:mod:`mpmae.data.format.publish`).
"""

from __future__ import annotations

import datetime as dt
import math
import time
import zlib
from collections.abc import Callable, Iterable

import numpy as np

from mpmae.config import ConfigError
from mpmae.data.format.manifest import Manifest, ShardInfo, write_manifest
from mpmae.data.format.names import split_name_problem
from mpmae.data.format.publish import check_rerun, options_key, remove_superseded
from mpmae.data.format.schema import presence_bands
from mpmae.data.format.shards import shard_name
from mpmae.data.sources.config import ConvertConfig, Split
from mpmae.data.sources.convert_jobs import JobContext, ShardJob, ShardResult, run_jobs
from mpmae.data.sources.mmearth_h5 import (
    CONVERTED,
    NOT_CONVERTED,
    Release,
    ReleaseError,
    check_layout,
    find_release,
    read_metadata,
)
from mpmae.data.sources.release_stats import complete_stats, published_stats
from mpmae.modalities import MODALITIES
from mpmae.storage import Location, StorageOptions, resolve
from mpmae.version import __version__

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

Progress = Callable[[str], None]


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
    overwrite: bool = ConvertConfig.overwrite,
    storage: StorageOptions | None = None,
    progress: Progress = print,
) -> Manifest:
    """Convert the MMEarth release at ``src`` (folder or .h5) into tile shards at ``dest``.

    The options are :class:`ConvertConfig`'s (defaults and meaning there); a bad one raises
    a ConfigError naming it. Raises :class:`ReleaseError` (a ``DatasetError``) for a missing
    or damaged release.
    """
    cfg = ConvertConfig(split=split, limit=limit, shard_mb=shard_mb, seed=seed,
                        parallel=parallel, num_workers=num_workers, overwrite=overwrite)
    cfg.validate()
    started = time.perf_counter()
    release = find_release(src, storage)
    root = resolve(dest, storage)
    options = _options(release, cfg)
    check_rerun(root, options, overwrite)
    selected = _select_splits(release, split, limit)
    with release.open_h5() as h5:
        num_tiles, tile_size = check_layout(h5, release.h5)
        _check_rows(selected, num_tiles, release)
        jobs = _plan(h5, release, selected, _tiles_per_shard(tile_size, shard_mb), seed,
                     options_key(options))
    published = published_stats(release)
    progress(f"{release.file_names['h5']}: {num_tiles} tiles of {tile_size}px; converting "
             + ", ".join(f"{k} {len(v)}" for k, v in selected.items())
             + f" tiles into {len(jobs)} shards at {root.uri}")
    ctx = JobContext(release, root.uri, root.options, tile_size)
    results = run_jobs(jobs, ctx, parallel, num_workers, _reporter(progress, started))
    shards = {k: _split_shards(results, k) for k in selected}
    stats, stats_note = complete_stats(published, release, root, shards, progress)
    manifest = Manifest(
        tile_size=tile_size,
        modalities=list(CONVERTED),
        stats=stats,
        splits=shards,
        provenance=_provenance(release, selected, options, stats_note),
        license=LICENSE,
    )
    write_manifest(root, manifest)
    remove_superseded(root, manifest, progress)
    _summary(results, root, started, progress)
    return manifest


def _select_splits(release: Release, split: str | None, limit: int | None) -> dict:
    """split → HDF5 rows (first ``limit`` of each, in splits.json order); empty splits dropped."""
    doc = release.read_json("splits")
    if not isinstance(doc, dict) or not all(isinstance(v, list) for v in doc.values()):
        raise ReleaseError(f"{release.splits} should map split names to lists of row indices")
    for name in doc:
        problem = split_name_problem(name)
        if problem:
            raise ReleaseError(f"{release.splits}: {problem}; it becomes a folder of the "
                               "dataset: rename the split")
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


def _plan(h5, release: Release, selected: dict, per_shard: int, seed: int,
          key: str) -> list[ShardJob]:
    """Permute each split with ``seed`` and cut it into shard jobs of at most ``per_shard``
    (shard names carry ``key``, the options' key)."""
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
                split=split, name=shard_name(split, index, key), rows=group,
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


def _reporter(progress: Progress, started: float) -> Callable[[ShardResult], None]:
    def report(result: ShardResult) -> None:
        info = result.info
        if result.written:
            progress(f"  wrote {info.path}: {info.tiles} tiles, {info.bytes / 2**20:.1f} MB, "
                     f"{time.perf_counter() - started:.1f} s")
        else:
            progress(f"  kept {info.path}: already complete ({info.tiles} tiles)")
    return report


def _split_shards(results: list[ShardResult], split: str) -> list[ShardInfo]:
    """The split's shards in index order (Ray returns them in completion order)."""
    infos = [r.info for r in results if r.info.path.startswith(f"{split}/")]
    return sorted(infos, key=lambda info: info.path)


def _options(release: Release, cfg: ConvertConfig) -> dict:
    """What decides the shards' content: a re-run with other options is refused (unless
    overwriting) and writes shards of other names. Key names predate ConvertConfig."""
    return {"source": release.file_names["h5"], "split": cfg.split, "limit": cfg.limit,
            "seed": cfg.seed, "target_shard_mb": cfg.shard_mb}


def _provenance(release: Release, selected: dict, options: dict, stats_note: dict) -> dict:
    return {
        "source": {"dataset": "MMEarth", "files": release.file_names,
                   "tiles": {k: len(v) for k, v in selected.items()}},
        "converter": {"name": "mpmae data convert", "version": __version__},
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "options": options,
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
