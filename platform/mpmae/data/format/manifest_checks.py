"""Checks of a parsed ``dataset.json`` before any of it is used.

Each problem is reported as ``field: what is wrong``, so a hand-edited or damaged manifest
fails with one line naming the field, not a traceback deep in the reader or NaN losses
from statistics that cannot normalise.
"""

from __future__ import annotations

import math
import re

from mpmae.data.format.names import shard_path_problem, split_name_problem
from mpmae.modalities import MODALITIES, S2_LEVELS

_SHA256 = re.compile(r"[0-9a-f]{64}")


def manifest_problem(doc: dict) -> str | None:
    """The first problem of a parsed manifest object (format fields aside), or None."""
    for check in (_tile_size_problem, _modalities_problem, _splits_problem, _stats_problem,
                  _extras_problem):
        problem = check(doc)
        if problem:
            return problem
    return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _tile_size_problem(doc: dict) -> str | None:
    size = doc.get("tile_size")
    if not _is_int(size) or size < 1:
        return f"tile_size: must be a whole number of pixels, got {size!r}"
    return None


def _modalities_problem(doc: dict) -> str | None:
    names = doc.get("modalities")
    if not isinstance(names, (dict, list)) or not names:
        return "modalities: must list the dataset's modalities"
    unknown = [m for m in names if m not in MODALITIES]
    return f"modalities: unknown modalities {unknown}" if unknown else None


def _splits_problem(doc: dict) -> str | None:
    splits = doc.get("splits")
    if not isinstance(splits, dict) or not splits:
        return "splits: must map split names to their shards; it lists none"
    seen: set[str] = set()
    for name, shards in splits.items():
        problem = split_name_problem(name)
        if problem:
            return f"splits: {problem}"
        if not isinstance(shards, list) or not shards:
            return f"splits.{name}: must list at least one shard"
        for i, shard in enumerate(shards):
            problem = _shard_problem(shard, seen)
            if problem:
                return f"splits.{name}[{i}]: {problem}"
    return None


def _shard_problem(shard: object, seen: set[str]) -> str | None:
    if not isinstance(shard, dict):
        return "must be an object with path, tiles and bytes"
    path = shard.get("path")
    problem = shard_path_problem(path)
    if problem:
        return problem
    if path in seen:
        return f"shard {path!r} is listed twice"
    seen.add(path)
    if not _is_int(shard.get("tiles")) or shard["tiles"] < 1:
        return f"tiles: must be a positive whole number, got {shard.get('tiles')!r}"
    if not _is_int(shard.get("bytes", 0)) or shard.get("bytes", 0) < 0:
        return f"bytes: must be a whole number, got {shard.get('bytes')!r}"
    problem = _row_groups_problem(shard.get("row_groups", []), shard["tiles"])
    if problem:
        return problem
    digest = shard.get("sha256", "")
    if digest and not (isinstance(digest, str) and _SHA256.fullmatch(digest)):
        return f"sha256: must be 64 lower-case hex digits, got {digest!r}"
    return None


def _row_groups_problem(groups: object, tiles: int) -> str | None:
    """``row_groups`` (optional): the tiles of each of the shard's row groups, adding up to
    its ``tiles``; the stream plans its reads from it without reading the shard."""
    if not isinstance(groups, list) or not all(_is_int(n) and n > 0 for n in groups):
        shown = repr(groups) if len(repr(groups)) <= 80 else repr(groups)[:77] + "..."
        return ("row_groups: must list each row group's tiles (positive whole numbers), "
                f"got {shown}")
    if groups and sum(groups) != tiles:
        return (f"row_groups: its {len(groups)} row groups hold {sum(groups)} tiles, tiles "
                f"says {tiles}")
    return None


def _extras_problem(doc: dict) -> str | None:
    if not isinstance(doc.get("provenance", {}), dict):
        return "provenance: must be an object"
    labels = doc.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(n, str) for n in labels):
        return "labels: must be a list of class names"
    return None


def _stats_problem(doc: dict) -> str | None:
    stats = doc.get("stats")
    if not isinstance(stats, dict):
        return "stats: must map statistics keys to mean/std lists"
    for key, entry in stats.items():
        modality = _stats_modality(key)
        if modality is None or modality not in doc["modalities"]:
            return f"stats.{key}: names no normalised modality of this dataset"
        problem = _entry_problem(entry, MODALITIES[modality].num_bands)
        if problem:
            return f"stats.{key}{problem}"
    return None


def _stats_modality(key: str) -> str | None:
    """The modality a statistics key belongs to (``sentinel2_l2a`` → ``sentinel2``)."""
    if key in (f"sentinel2_{level}" for level in S2_LEVELS):
        return "sentinel2"
    m = MODALITIES.get(key)
    return key if m is not None and key != "sentinel2" and not m.kind.is_classification else None


def _entry_problem(entry: object, bands: int) -> str | None:
    """``.stat: problem`` of one statistics entry, or None."""
    if not isinstance(entry, dict):
        return ": must be an object with mean and std lists"
    for stat in ("mean", "std", "min", "max"):
        values = entry.get(stat)
        if values is None and stat in ("min", "max"):
            continue
        if not isinstance(values, list) or len(values) != bands:
            return f".{stat}: must be a list of {bands} numbers (one per band), got {values!r}"
        if not all(_is_finite(v) for v in values):
            return f".{stat}: must hold finite numbers, got {values!r}"
        if stat == "std" and min(values) <= 0:
            return f".std: must be positive (a zero std cannot normalise), got {values!r}"
    return None


def _is_finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
