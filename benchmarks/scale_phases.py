"""The phases bench_scale measures on one dataset in one arm (a local folder, or S3 through
the latency proxy): each returns its figures as a dict.

CPU is every session process's (``session_cpu``: this driver, Ray's workers and daemons,
and apart from them the benchmark's own S3 endpoint and proxy, which real S3 runs on other
machines); "per core" throughputs divide by the CPU seconds of the driver and Ray, not by
wall time, so a machine shared with other jobs changes them less.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow as pa
import session_cpu
import stream_stages
from latency_proxy import LatencyProxy
from moto_endpoint import BUCKET, LOCAL_KEYS, REGION
from peaks import Peaks

from mpmae.data.sources.convert import convert_mmearth
from mpmae.data.sources.synth import synthesize
from mpmae.data.stream.row_group_source import RowGroupSource, block_schema, tile_nbytes
from mpmae.data.stream.stage_clock import StageClock
from mpmae.data.stream.tile_dataset import TileDataset, torch_batches
from mpmae.data.verify import verify_dataset
from mpmae.modalities import PretextSet
from mpmae.storage import StorageOptions

OURS = ("driver", "ray_workers", "ray_daemons")  # what a run pays on its own machines


@dataclass(frozen=True)
class Arm:
    """Where datasets live: ``folder`` (local), or the bucket of an S3 endpoint reached
    through a fresh latency proxy per phase (``upstream``), so each phase's requests are
    counted apart."""

    name: str
    folder: str = ""
    upstream: str = ""
    latency_ms: float = 30.0

    def uri(self, dataset: str) -> str:
        return f"s3://{BUCKET}/{dataset}" if self.upstream else os.path.join(self.folder, dataset)

    @contextmanager
    def session(self, request_log: str = "") -> Iterator[tuple[StorageOptions | None, dict]]:
        """(storage options, a dict that gets ``requests`` after the block, S3 only);
        ``request_log``: a file that gets a JSON line per request (S3 only)."""
        counted: dict = {}
        if not self.upstream:
            yield None, counted
            return
        keys = (LOCAL_KEYS["AWS_ACCESS_KEY_ID"], LOCAL_KEYS["AWS_SECRET_ACCESS_KEY"])
        with LatencyProxy(self.upstream, self.latency_ms, request_log) as proxy:
            yield StorageOptions(proxy.endpoint, REGION, *keys), counted
        counted["requests"] = proxy.requests


@contextmanager
def cpu_and_wall() -> Iterator[dict]:
    """Fills the yielded dict with ``wall_s`` and ``cpu_s`` by role when the block ends."""
    out: dict = {}
    before, began = session_cpu.snapshot(), time.perf_counter()
    yield out
    out["wall_s"] = round(time.perf_counter() - began, 3)
    out["cpu_s"] = {k: round(v, 3) for k, v in
                    session_cpu.seconds_by_role(before, session_cpu.snapshot()).items()}


def ours(figures: dict) -> float:
    """CPU seconds of the driver and Ray (not the benchmark's S3 endpoint or proxy)."""
    return sum(figures["cpu_s"][r] for r in OURS)


def synth(arm: Arm, name: str, tiles: int, size: int, per_shard: int) -> dict:
    """``data synth`` of ``tiles`` tiles (no labelled set) in shards of ``per_shard``."""
    with arm.session() as (storage, counted), cpu_and_wall() as out:
        manifest = synthesize(arm.uri(name), tiles=tiles, size=size, seed=0,
                              downstream_tiles=0, tiles_per_shard=per_shard, overwrite=True,
                              storage=storage, progress=lambda _: None)
    shards = [s for infos in manifest.splits.values() for s in infos]
    out.update(counted, shards=len(shards), bytes=sum(s.bytes for s in shards),
               train_tiles=manifest.split_tiles("train"),
               tiles_per_core_s=round(tiles / max(ours(out), 1e-9), 1))
    return out


def convert(arm: Arm, release: str, name: str, tiles: int, per_shard: int,
            tile_bytes: int) -> dict:
    """``data convert`` of the release at ``release`` (local) into ``arm``, shards of about
    ``per_shard`` tiles of ``tile_bytes`` (as Ray tasks: the command's default)."""
    with arm.session() as (storage, counted), cpu_and_wall() as out:
        manifest = convert_mmearth(release, arm.uri(name), shard_mb=per_shard * tile_bytes
                                   / 2**20, overwrite=True, storage=storage,
                                   progress=lambda _: None)
    out.update(counted, shards=sum(len(v) for v in manifest.splits.values()),
               tiles_per_core_s=round(tiles / max(ours(out), 1e-9), 1))
    return out


def verify(arm: Arm, name: str, tiles: int) -> dict:
    """``data verify``: every shard read back and checked."""
    with arm.session() as (storage, counted), cpu_and_wall() as out:
        verify_dataset(arm.uri(name), storage, progress=lambda _: None)
    out.update(counted, core_ms_per_tile=round(1e3 * ours(out) / tiles, 4))
    return out


def open_only(arm: Arm, name: str) -> dict:
    """``TileDataset.open``: the manifest, and every shard checked present and of its size
    (one listing of each split folder; a manifest of older mpmae: every footer read)."""
    with arm.session() as (storage, counted), cpu_and_wall() as out:
        TileDataset.open(arm.uri(name), storage)
    out.update(counted)
    return out


def stream(arm: Arm, name: str, pretext: PretextSet, batch: int, cap: int) -> dict:
    """From opening the dataset to its first batch (a run's start-up, less Ray's workers and
    the model), then the epoch's steady CPU per delivered tile, up to ``cap`` tiles; the
    peaks of memory over both."""
    with tempfile.TemporaryDirectory() as folder, arm.session() as (storage, counted), \
            Peaks() as peaks:
        clock = StageClock(folder)
        began = time.perf_counter()
        ds = TileDataset.open(arm.uri(name), storage)
        batches = iter(torch_batches(ds.read("train", pretext, seed=0, stage_clock=clock),
                                     batch, device="cpu"))
        next(batches)
        first_s = time.perf_counter() - began
        out = _steady(batches, clock, ds.manifest.split_tiles("train"), batch, cap)
    out.update(counted, first_batch_s=round(first_s, 3), peaks=peaks.result())
    return out


def _steady(batches, clock: StageClock, epoch: int, batch: int, cap: int) -> dict:
    clock.take()  # what was read before the first batch
    before, idle = session_cpu.snapshot(), stream_stages.machine_idle_s()
    began, main = time.perf_counter(), time.thread_time()
    tiles = 0
    for b in batches:
        tiles += len(b["sentinel2"])
        if tiles + batch > cap:
            break
    wall, main = time.perf_counter() - began, time.thread_time() - main
    after, idle = session_cpu.snapshot(), stream_stages.machine_idle_s() - idle
    roles = session_cpu.seconds_by_role(before, after)
    return {"epoch_tiles": epoch, "tiles": tiles, "capped": tiles + 2 * batch < epoch,
            "wall_s": round(wall, 3), "tiles_per_s": round(tiles / max(wall, 1e-9), 1),
            "core_ms_per_tile": round(1e3 * sum(roles[r] for r in OURS) / max(tiles, 1), 4),
            "by_role": session_cpu.core_ms_per_tile(before, after, tiles),
            "stages": stream_stages.breakdown(roles, clock.take(), 0.0, main, idle, wall,
                                              os.cpu_count(), tiles)}


def resume(arm: Arm, name: str, pretext: PretextSet, batch: int, cap: int) -> dict:
    """A run resumed half-way through its epoch: the read tasks planned (their tiles, and
    the driver's time to plan them), the wait for the first batch, and the tiles the read
    tasks read against those they had to (up to ``cap`` delivered)."""
    with tempfile.TemporaryDirectory() as folder, arm.session() as (storage, counted):
        ds = TileDataset.open(arm.uri(name), storage)
        epoch = ds.manifest.split_tiles("train")
        skip = epoch // 2
        schema = ds.manifest.schema()
        columns = pa.schema([schema.field(c) for c in pretext.columns])
        planned_s, planned = _plan(lambda: RowGroupSource(ds.root, ds.row_groups("train"),
                                                          columns, skip_tiles=skip))
        clock = StageClock(folder)
        began = time.perf_counter()
        batches = iter(torch_batches(ds.read("train", pretext, seed=0, skip_tiles=skip,
                                             stage_clock=clock), batch, device="cpu"))
        next(batches)
        first_s = time.perf_counter() - began
        delivered = batch
        for b in batches:
            delivered += len(b["sentinel2"])
            if delivered + batch > cap:
                break
        read = int(clock.take()["tiles"])
    return {**counted, "epoch_tiles": epoch, "skipped": skip, "tiles_planned": planned,
            "plan_cpu_s": round(planned_s, 4), "first_batch_s": round(first_s, 3),
            "tiles_delivered": delivered, "tiles_read": read,
            "read_skipped_tiles": planned > epoch - skip + 64 or read > planned}


def _plan(make_source: Callable[[], RowGroupSource]) -> tuple[float, int]:
    """(CPU seconds of this thread to build the source and plan its first execution, tiles
    planned): CPU, not wall, which a loaded machine stretches many times."""
    began = time.thread_time()
    tasks = make_source().get_read_tasks(1)
    return time.thread_time() - began, sum(t.metadata.num_rows for t in tasks)


def tile_bytes(ds: TileDataset) -> int:
    """Decoded bytes of one tile of ``ds`` (every stored column)."""
    return tile_nbytes(block_schema(ds.manifest.schema()))
