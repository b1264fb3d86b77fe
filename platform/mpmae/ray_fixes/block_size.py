"""Blocks passed on as the source yields them.

Ray 2.60's Ray Data merges yielded blocks until they exceed
``DataContext.target_max_block_size`` (a copy of every tile, and the first block waits for
the second) and slices blocks of 1.5× it. A source sets the target from its own block
sizes (``RowGroupSource.target_max_block_size``); that rule is 2.60's, so another Ray
keeps its default.
"""

from __future__ import annotations

from mpmae.ray_fixes.guard import version_ok

BLOCK_SIZE = "block_size"


def pass_blocks_as_yielded(context, target_bytes: int) -> None:
    """Set a dataset's ``context`` so blocks of about ``target_bytes`` pass unmerged."""
    if version_ok(BLOCK_SIZE):
        context.target_max_block_size = target_bytes
