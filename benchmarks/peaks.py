"""Peak memory while a benchmark's phase runs, sampled on a thread: the driver's RSS (and
what it was as the phase began: what earlier phases left is not the phase's), the largest
Ray worker's RSS and the Ray object store's bytes in use.

Sampled every ``interval_s``: a peak shorter than that can be missed. The object store's
use is what the raylet reports (its node stats, a private Ray API reached through
``mpmae.ray_fixes.guard``; null where this Ray lacks it).
"""

from __future__ import annotations

import threading

import psutil
import session_cpu

from mpmae.ray_fixes.guard import private

MB = 2**20


class Peaks:
    """``with Peaks() as peaks:`` … then ``peaks.result()`` (MB)."""

    def __init__(self, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s
        self.driver = self.worker = self.store = 0
        self.store_seen = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peaks", daemon=True)
        self._store = _store_reader()

    def __enter__(self) -> Peaks:
        self.driver_start = psutil.Process().memory_info().rss
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._sample()

    def result(self) -> dict:
        return {"driver_rss_mb": round(self.driver / MB),
                "driver_rss_start_mb": round(self.driver_start / MB), "ray_worker_rss_mb": round(
            self.worker / MB), "object_store_mb": round(self.store / MB)
            if self.store_seen else None}

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self) -> None:
        me = psutil.Process()
        self.driver = max(self.driver, me.memory_info().rss)
        for p in me.children(recursive=True):
            try:
                if session_cpu.role(p) == "ray_workers":
                    self.worker = max(self.worker, p.memory_info().rss)
            except psutil.Error:  # ended between listing and reading it
                continue
        if self._store is not None:
            used = self._store()
            if used is not None:
                self.store, self.store_seen = max(self.store, used), True


def _store_reader():
    """A function returning the local raylet's object store bytes in use (None: no answer),
    or None where Ray is not running or lacks the API."""
    import ray

    node_stats = private("ray._private.internal_api", "node_stats", "bench_scale peaks")
    if node_stats is None or not ray.is_initialized():
        return None
    node = next(n for n in ray.nodes() if n["Alive"])

    def used() -> int | None:
        try:
            stats = node_stats(node["NodeManagerAddress"], node["NodeManagerPort"],
                               include_memory_info=False)
        except Exception:  # a busy raylet's missed answer (gRPC) is one lost sample
            return None
        return int(stats.store_stats.object_store_bytes_used)

    return used
