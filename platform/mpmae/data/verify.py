"""``mpmae data verify``: read a whole dataset back and name every damaged shard.

Reading ``dataset.json`` checks its fields, paths and statistics (finite, std > 0, one
value per band); then every shard is read once: its size and SHA-256 against the
manifest, every page decoded with its checksum verified, its footer against the schema
and tile count. Every shard is checked even after a damaged one, so one run lists them all.
A store that throttles, fails or cannot be reached stops the run with that said (never a
shard called damaged for it); retries that got through are counted in the summary.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from mpmae.data.format.band_stats import stats_key
from mpmae.data.format.manifest import DatasetError, Manifest, ShardInfo, read_manifest
from mpmae.data.format.shards import decode_problem, digest, footer_problems, parse_shard
from mpmae.modalities import MODALITIES, S2_LEVELS
from mpmae.storage import Location, StorageOptions, resolve, retries_note, retry_counts

NO_HASHES = ("dataset.json records no shard hashes (written by an older mpmae): verify can "
             "only check sizes, page checksums (where the shards have them) and decoding; "
             "re-create the dataset to record them")


def verify_dataset(uri: str, storage: StorageOptions | None = None,
                   progress: Callable[[str], None] = print) -> str:
    """Verify the dataset at ``uri``; returns a summary, or raises a DatasetError that
    names every damaged shard."""
    root = resolve(uri, storage)
    retries_before = retry_counts()
    manifest = read_manifest(root)
    missing = missing_stats(manifest)
    if missing:
        raise DatasetError(f"{root.uri}/dataset.json: stats: no statistics for {missing}; "
                           "training cannot normalise them: re-create the dataset")
    if not manifest.has_hashes:
        progress(NO_HASHES)
    schema = manifest.schema()
    damaged = []
    shards = [info for infos in manifest.splits.values() for info in infos]
    for info in shards:
        problems = shard_problems(root, info, schema)
        progress(f"  {info.path}: {'; '.join(problems) if problems else 'ok'}")
        if problems:
            damaged.append(f"{info.path} ({'; '.join(problems)})")
    if damaged:
        raise DatasetError(
            f"{len(damaged)} of {len(shards)} shards of {root.uri} are damaged: "
            + ", ".join(damaged)
            + ". Re-run the conversion (it rewrites damaged shards) or re-create the dataset")
    size = sum(s.bytes for s in shards) / 2**20
    return (f"verified {root.uri}: {len(shards)} shards, {manifest.num_tiles} tiles, "
            f"{size:.1f} MB; statistics, sizes, "
            f"{'SHA-256, ' if manifest.has_hashes else ''}page checksums and schema ok"
            f"{retries_note(retries_before)}")


def shard_problems(root: Location, info: ShardInfo, schema: pa.Schema) -> list[str]:
    """What is wrong with one shard (empty: nothing): read once, checked every way."""
    try:
        data = root.join(*info.path.split("/")).read_bytes()
    except FileNotFoundError:
        return ["missing"]
    problems = []
    if info.bytes and len(data) != info.bytes:
        problems.append(f"{len(data)} bytes, dataset.json says {info.bytes}")
    if info.sha256 and digest(data) != info.sha256:
        problems.append("SHA-256 differs from dataset.json")
    decode = decode_problem(data)
    if decode is not None:
        return [*problems, f"does not decode ({decode})"]
    return problems + footer_problems(info, parse_shard(data).metadata, schema)


def missing_stats(manifest: Manifest) -> list[str]:
    """Statistics keys the normaliser needs for this dataset's modalities but that it lacks."""
    needed = [stats_key(name, level)
              for name in manifest.modalities if not MODALITIES[name].kind.is_classification
              for level in (S2_LEVELS if name == "sentinel2" else (None,))]
    return [key for key in needed if key not in manifest.stats]
