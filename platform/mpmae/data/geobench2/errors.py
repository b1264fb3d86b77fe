"""The one error the GEO-Bench-2 reader raises."""

from __future__ import annotations

from mpmae.data.format.manifest import DatasetError


class GeoBench2Error(DatasetError):
    """A GEO-Bench-2 file is missing, malformed, points outside itself or holds other data
    than the benchmark says. The message is one line naming the file and what to do."""
