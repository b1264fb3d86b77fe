"""Rank 0's metrics and figures, sent to MLflow by one background thread: training never
waits on the tracking server.

A call is queued in O(1) and the thread sends the queue in order. When the server does not
answer, the thread keeps the calls, warns once, looks again every few seconds and sends
them when the server is back (each metric carries its step and timestamp, so sending late
is faithful), then says so. The queue is bounded — past ``capacity`` calls (or
``figures_kept`` figures) the oldest are dropped, and the warnings count them — because an
outage as long as a whole run must not fill the worker's memory. :meth:`TrackingSink.close`
waits a bounded time for the queue to empty and writes what is still unsent to
``unsent_tracking/`` in the run folder, and says so: nothing is lost silently.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mpmae.track.server_check import (
    HTTP_TIMEOUT_S,
    SHORT_HTTP,
    is_remote,
    shown,
    why_not_answering,
)

if TYPE_CHECKING:
    from mpmae.storage import Location

FIGURE_DIR = "reconstructions"
UNSENT_DIR = "unsent_tracking"
UNSENT_METRICS = "metrics.jsonl"
CALLS_KEPT = 20_000  # metric calls: at log_every=10, an outage of 200k steps
FIGURES_KEPT = 50  # PNGs of ~100 kB each
RETRY_S = 3.0
FLUSH_WAIT_S = 60.0
METRIC_BATCH = 1000  # MLflow's limit on metrics in one log_batch

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Metrics:
    rows: list[tuple[str, float, int, int]]  # key, value, timestamp in ms, step


@dataclass(frozen=True)
class _Figure:
    step: int
    png: bytes


class TrackingSink:
    """Queues metrics and reconstruction figures of the MLflow run ``run_id`` at ``uri``."""

    def __init__(self, run_id: str, uri: str, *, capacity: int = CALLS_KEPT,
                 figures_kept: int = FIGURES_KEPT, retry_s: float = RETRY_S) -> None:
        import mlflow

        # For the whole process (rank 0's worker): its sink and its last calls (the encoder)
        # must notice an outage in seconds. A user's own settings win.
        if is_remote(uri):
            for name, value in SHORT_HTTP.items():
                os.environ.setdefault(name, value)
        self.run_id, self.uri = run_id, uri
        self._client = mlflow.MlflowClient(uri)
        self._capacity, self._figures_kept, self._retry_s = capacity, figures_kept, retry_s
        self._calls: deque[_Metrics | _Figure] = deque()
        self._cond = threading.Condition()
        self._dropped = 0
        self._away = False
        self._closing = self._stop = False
        self._thread = threading.Thread(target=self._drain, name="mpmae-tracking", daemon=True)
        self._thread.start()

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Queue scalars at an optimizer step; returns at once."""
        now = int(time.time() * 1000)
        self._put(_Metrics([(key, float(value), now, step) for key, value in metrics.items()]))

    def log_figure(self, png: bytes, step: int) -> None:
        """Queue a PNG for ``reconstructions/step_000100.png``; returns at once."""
        self._put(_Figure(step, png))

    def close(self, spill_to: Location, wait_s: float = FLUSH_WAIT_S) -> str | None:
        """Send what is queued, waiting at most ``wait_s`` (plus one request); write what is
        left to ``spill_to/unsent_tracking/`` and return that folder's URI (None: all sent)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(wait_s)
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(2 * HTTP_TIMEOUT_S + 5)  # the request in flight, retried once
        with self._cond:
            left, self._calls = list(self._calls), deque()
        if self._dropped:
            _log.warning("%d tracking calls to MLflow at %s were dropped: the queue was full "
                         "(it keeps the newest %d) or the server refused them (warned above)",
                         self._dropped, shown(self.uri), self._capacity)
        return self._spill(left, spill_to) if left else None

    def _put(self, call: _Metrics | _Figure) -> None:
        with self._cond:
            self._calls.append(call)
            if len(self._calls) > self._capacity:
                self._calls.popleft()
                self._count_dropped()
            if isinstance(call, _Figure) and self._figure_count() > self._figures_kept:
                self._calls.remove(next(c for c in self._calls if isinstance(c, _Figure)))
                self._count_dropped()
            self._cond.notify()

    def _figure_count(self) -> int:
        return sum(isinstance(c, _Figure) for c in self._calls)

    def _count_dropped(self) -> None:
        self._dropped += 1
        if self._dropped == 1:
            _log.warning("MLflow at %s has been away long enough to fill the tracking queue: "
                         "the oldest metrics and figures are dropped from now on",
                         shown(self.uri))

    def _drain(self) -> None:
        while True:
            with self._cond:
                while not self._calls and not (self._closing or self._stop):
                    self._cond.wait()
                if self._stop or not self._calls:
                    return
                away = self._away
            if away and self._still_away():
                continue
            with self._cond:
                if not self._calls:  # close() took them after giving up on this thread
                    return
                batch = self._take()
            error = self._send(batch)
            if error is None:
                self._back()
                continue
            reason = why_not_answering(self.uri)
            with self._cond:
                if reason is None:  # the server is there and refused this call itself
                    self._dropped += len(batch)
                    _log.warning("MLflow at %s refused a tracking call, dropped: %s",
                                 shown(self.uri), error)
                    continue
                self._calls.extendleft(reversed(batch))
                self._went_away(reason)
                self._cond.wait(self._retry_s)  # close() cuts the wait short

    def _still_away(self) -> bool:
        """While away, a look at /health (no lock held) rather than a send; if it still does
        not answer, wait before the next look."""
        if why_not_answering(self.uri, self._retry_s) is None:
            return False
        with self._cond:
            self._cond.wait(self._retry_s)  # close() cuts the wait short
        return True

    def _take(self) -> list[_Metrics | _Figure]:
        """The oldest call; consecutive metric calls go together, up to one MLflow batch."""
        batch = [self._calls.popleft()]
        if isinstance(batch[0], _Figure):
            return batch
        rows = len(batch[0].rows)
        while (self._calls and isinstance(self._calls[0], _Metrics)
               and rows + len(self._calls[0].rows) <= METRIC_BATCH):
            rows += len(self._calls[0].rows)
            batch.append(self._calls.popleft())
        return batch

    def _send(self, batch: list[_Metrics | _Figure]) -> Exception | None:
        from mlflow.entities import Metric

        try:
            if isinstance(batch[0], _Figure):
                self._send_figure(batch[0])
            else:
                metrics = [Metric(*row) for call in batch for row in call.rows]
                self._client.log_batch(self.run_id, metrics=metrics)
        except Exception as e:  # judged by the caller: is the server away, or was it this call?
            return e
        return None

    def _send_figure(self, figure: _Figure) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / f"step_{figure.step:06d}.png"
            file.write_bytes(figure.png)
            self._client.log_artifact(self.run_id, str(file), FIGURE_DIR)

    def _went_away(self, reason: str) -> None:
        if self._away:
            return
        self._away = True
        metrics, figures = self._kept()
        _log.warning("MLflow at %s is not answering (%s); training goes on, %d metric values "
                     "and %d figures kept to send later", shown(self.uri), reason, metrics,
                     figures)

    def _back(self) -> None:
        with self._cond:
            if not self._away:
                return
            self._away = False
            metrics, figures = self._kept()
        _log.warning("MLflow at %s answers again: sending the %d metric values and %d figures "
                     "kept meanwhile", shown(self.uri), metrics, figures)

    def _kept(self) -> tuple[int, int]:
        metrics = sum(len(c.rows) for c in self._calls if isinstance(c, _Metrics))
        return metrics, self._figure_count()

    def _spill(self, left: list[_Metrics | _Figure], spill_to: Location) -> str:
        folder = spill_to.join(UNSENT_DIR)
        rows = [row for call in left if isinstance(call, _Metrics) for row in call.rows]
        lines = (json.dumps(dict(zip(("key", "value", "timestamp", "step"), row, strict=True)))
                 for row in rows)
        folder.join(UNSENT_METRICS).write_bytes_atomic("".join(f"{x}\n" for x in lines).encode())
        figures = [call for call in left if isinstance(call, _Figure)]
        for figure in figures:
            name = f"step_{figure.step:06d}.png"
            folder.join(FIGURE_DIR, name).write_bytes_atomic(figure.png)
        _log.warning("MLflow at %s did not answer before the run ended: %d metric values and %d "
                     "figures of run %s were not sent; they are in %s", shown(self.uri),
                     len(rows), len(figures), self.run_id, folder.uri)
        return folder.uri
