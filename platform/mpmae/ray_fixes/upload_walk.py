"""Ray's own packaging walk and gitignore matcher, so `mpmae submit` lists and measures
exactly what Ray will upload. Private names of Ray 2.60: a Ray that moved them still
submits; only the listing, the size check and the dataset-folder scan are lost."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mpmae.ray_fixes.guard import private

UPLOAD_WALK = "upload_walk"
PACKAGING = "ray._private.runtime_env.packaging"
PATHSPEC = ("ray._private.thirdparty.pathspec", "PathSpec")
PRIVATE_NAMES = ((PACKAGING, "_dir_travel"), (PACKAGING, "_get_excludes"), PATHSPEC)


@dataclass(frozen=True)
class RayWalker:
    dir_travel: Callable
    get_excludes: Callable
    path_spec: type


def ray_walker() -> RayWalker | None:
    """The walker, or None (warned once) where this Ray lacks a piece of it."""
    parts = tuple(private(*name, UPLOAD_WALK) for name in PRIVATE_NAMES)
    return RayWalker(*parts) if all(parts) else None
