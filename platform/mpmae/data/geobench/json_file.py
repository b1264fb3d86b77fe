"""GEO-Bench's small JSON files (statistics, partitions, normaliser) read one way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mpmae.data.geobench.errors import GeoBenchError


def read_json_object(path: Path, expected: str, advice: str) -> dict[str, Any]:
    """The JSON object in ``path``; a one-line error naming the file if it cannot be read
    (``advice``: what to do) or holds something else (``expected``: what it should)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise GeoBenchError(f"{path}: not readable JSON ({type(exc).__name__}); "
                            f"{advice}") from None
    if not isinstance(doc, dict):
        raise GeoBenchError(f"{path}: expected {expected}")
    return doc
