"""The band statistics of a converted MMEarth release: the release's own
``band_stats.json`` where usable, the rest computed over the converted train tiles."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mpmae.data.format.band_stats import BandStats, stats_key
from mpmae.data.format.manifest import ShardInfo
from mpmae.data.format.shards import open_shard
from mpmae.data.sources.mmearth_h5 import CONVERTED, Release, ReleaseError
from mpmae.modalities import MODALITIES, S2_LEVELS
from mpmae.storage import Location

# What a band gets when nothing tells its statistics: z-scoring leaves it as it is.
NEUTRAL_STATS = ("mean", 0.0), ("std", 1.0), ("min", 0.0), ("max", 0.0)


def published_stats(release: Release) -> dict[str, dict[str, list[float]]]:
    """The usable entries of band_stats.json, checked before any shard is written."""
    doc = release.read_json("band_stats")
    if not isinstance(doc, dict):
        raise ReleaseError(f"{release.band_stats} should map statistics keys to mean/std/...")
    return {k: _clean_stats(doc[k], k, m, release.band_stats)
            for k, m in _stats_keys().items() if k in doc}


def complete_stats(published: dict, release: Release, root: Location,
                    shards: dict[str, list[ShardInfo]], progress: Callable[[str], None]):
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
