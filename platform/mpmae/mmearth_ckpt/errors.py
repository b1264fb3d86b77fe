"""The import's one error type."""

from __future__ import annotations

from mpmae.errors import MpmaeError


class CheckpointError(MpmaeError, ValueError):
    """A checkpoint that is missing, unsafe, damaged or not an MMEarth FCMAE encoder."""
