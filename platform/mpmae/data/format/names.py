"""Names that come from data and become paths: split names and shard paths.

A split name becomes a folder of the dataset and a shard path is joined onto the dataset
root, so both are confined here: plain relative names only. A hostile or damaged
``splits.json`` or ``dataset.json`` cannot make mpmae read or write outside the dataset
(``..``, an absolute path, a drive letter or a URL scheme are refused).
"""

from __future__ import annotations

import re

# Letters, digits, '_', '.', '-'; not starting with '.' (so never '.' or '..').
_PART = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


def split_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a split name (a folder of the dataset), or None."""
    if not isinstance(name, str) or _PART.fullmatch(name) is None:
        return (f"split name {name!r} is not a plain name (letters, digits, '_', '.', '-', "
                "not starting with '.')")
    return None


def shard_path_problem(path: object) -> str | None:
    """Why ``path`` cannot be a shard path (relative to the dataset root, '/'-separated,
    inside it), or None."""
    if not isinstance(path, str):
        return f"shard path {path!r} is not a string"
    parts = path.split("/")
    if any(_PART.fullmatch(p) is None for p in parts):
        return (f"shard path {path!r} is not a relative path inside the dataset (plain "
                "names joined by '/'; no '..', absolute path or URL)")
    return None
