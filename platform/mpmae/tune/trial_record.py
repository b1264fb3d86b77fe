"""``trials/<key>/trial.json``: how a trial ended, in plain JSON that a resumed sweep reads.

A resumed sweep never restores Ray Tune's own experiment state: Tune pickles it, and
unpickling a file from shared storage runs whatever code was put there. Instead each trial
that trains to its end writes its record itself, and the driver writes the records of
the trials ASHA stopped or that failed once Tune returns. On resume, trials recorded as
completed or stopped are done; every other trial runs (on from its checkpoints, if it has
any). A trial ASHA had stopped when a driver died has no record yet, so it trains on.
"""

from __future__ import annotations

import json
import math
from typing import Any

from mpmae.storage import Location, PathNotFoundError

RECORD_FILE = "trial.json"
DONE = ("completed", "stopped")  # how a trial may end without needing another run
STATUSES = (*DONE, "error")


def write_record(trial_dir: Location, status: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """Record that the trial ended with ``status`` and its last reported ``metrics``
    (only numbers and strings are kept: Tune adds its own bookkeeping objects); returns
    the record as :func:`read_record` will read it."""
    kept = {k: _plain(v) for k, v in metrics.items() if isinstance(v, (int, float, str))}
    record = {"status": status, "metrics": kept}
    trial_dir.join(RECORD_FILE).write_bytes_atomic(json.dumps(record, indent=1).encode())
    return record


def read_record(trial_dir: Location) -> dict[str, Any] | None:
    """The trial's record, or None if it has none (or one that is not a record)."""
    try:
        doc = json.loads(trial_dir.join(RECORD_FILE).read_bytes())
    except (PathNotFoundError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("status") not in STATUSES or \
            not isinstance(doc.get("metrics"), dict):
        return None
    return doc


def _plain(value: Any) -> Any:
    """JSON has no NaN: the probe's placeholder on other ranks would not load back."""
    return None if isinstance(value, float) and not math.isfinite(value) else value
