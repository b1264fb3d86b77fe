"""Writing a dataset where one may already be, without ever leaving neither readable.

A writer (``synth``, ``convert``) names its shards with a key of the options that decide
their content, so a run with other options never overwrites a shard the existing
``dataset.json`` lists. The new manifest replaces the old one atomically once every shard
is written, and only then are the shards it no longer lists removed. A re-run with other
options than the dataset's is refused unless asked to overwrite: a different ``--limit``
typed by mistake must not replace a good dataset.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable

from mpmae.config import ConfigError
from mpmae.data.format.manifest import MANIFEST_NAME, DatasetError, Manifest, read_manifest
from mpmae.data.format.schema import FORMAT_VERSION
from mpmae.storage import Location, PathNotFoundError

# ``<split>/part-<index>-<key>.parquet``: what shard_name writes (older mpmae: no key).
_OUR_SHARD = re.compile(r"[^/]+/part-\d{5}(-[0-9a-f]{8})?\.parquet")


def options_key(options: dict, version: int = FORMAT_VERSION) -> str:
    """8 hex digits that change whenever ``options`` (JSON values) or the format version
    change: a re-run by a newer mpmae writes new shards beside those the old dataset.json
    lists, never keeps an old-format shard under a new-format manifest. Version 1 keys are
    those older mpmae wrote."""
    keyed = options if version == 1 else {**options, "format_version": version}
    text = json.dumps(keyed, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def check_rerun(root: Location, options: dict, overwrite: bool) -> None:
    """Refuse to write a dataset with ``options`` over one written with other options,
    unless ``overwrite``. Nothing at ``root`` (or the same options): carry on."""
    if overwrite or not root.join(MANIFEST_NAME).exists():
        return
    try:
        old = read_manifest(root).provenance.get("options")
    except (DatasetError, PathNotFoundError) as e:
        raise ConfigError(f"{root.uri} holds a dataset.json this run cannot compare with ({e}); "
                          "pass --overwrite to replace it, or choose another destination") from None
    if old == options:
        return
    changes = ", ".join(f"{k}: {_show(old, k)} → {json.dumps(options.get(k))}"
                        for k in sorted(set(options) | set(old or {}))
                        if (old or {}).get(k) != options.get(k))
    raise ConfigError(
        f"{root.uri} already holds a dataset made with other options ({changes}): re-run "
        "with its options to complete it, choose another destination, or pass --overwrite "
        "to replace it (the old one stays readable until the new one is complete)")


def _show(old: dict | None, key: str) -> str:
    return json.dumps(old[key]) if old and key in old else "not recorded"


def remove_superseded(root: Location, manifest: Manifest,
                      progress: Callable[[str], None]) -> None:
    """Delete the shards under ``root`` that ``manifest`` (already published) does not
    list: an older dataset's, or a failed run's. Only files named as mpmae names shards,
    one folder deep, are touched: nested datasets (``downstream/``) and other files stay."""
    listed = {s.path for shards in manifest.splits.values() for s in shards}
    stale = [name for name in root.list_files(".parquet")
             if _OUR_SHARD.fullmatch(name) and name not in listed]
    removed = 0
    for name in stale:
        loc = root.join(*name.split("/"))
        try:
            loc.fs.delete_file(loc.path)
            removed += 1
        except OSError as e:  # the new dataset is complete: a leftover is only clutter
            progress(f"could not remove the superseded shard {loc.uri} ({e}); delete it")
    if removed:
        progress(f"removed {removed} shard(s) the new dataset.json no longer lists")
