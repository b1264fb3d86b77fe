"""The one error the GEO-Bench reader raises."""

from __future__ import annotations

from mpmae.data.format.manifest import DatasetError


class GeoBenchError(DatasetError):
    """A GEO-Bench file is missing, unreadable, unsafe or inconsistent.

    The message is one line: the file (or sample) and what to do about it.
    """
