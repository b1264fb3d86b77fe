"""Data-plane throughput on MMEarth64-shaped tiles with every modality; prints JSON.

  (a) limit:  plain pyarrow reading the shards into numpy, one process, no Ray
  (b) stream: our Ray Data stream delivering normalised torch batches (crop 64→56)
  (c) h5py:   reference-style per-sample reads from a gzip HDF5 of the same tiles, as a
              map-style dataset does them: every modality of one tile at a time, then (as
              the reference loader's ``__getitem__``) normalised and cropped per tile in
              numpy and collated into torch batches, so it delivers what (b) delivers;
              ``reads_only`` is the same without the per-tile normalisation.

Beside tiles/s, each pass reports CPU per delivered tile: (a) its own process's, the limit;
(b) every process of the session (the driver, Ray's workers, the raylet, GCS and agents;
``session_cpu``), by role, and by stage (``stages_core_ms_per_tile``: decode,
shuffle/copy, object store, consumer, normaliser, idle; they add up to cores × wall, see
``stream_stages``): the read tasks time their decode and shuffle themselves
(``mpmae.data.stream.stage_clock``, on in this benchmark only).

(a) and (b) run from a local folder and from a real S3 endpoint (moto server on loopback,
in a process of its own whose CPU is reported apart: ``s3_endpoint``).
One pass of (b) is one epoch, a Ray Data execution as training runs it, its pipeline
start-up included; one epoch before the rest starts Ray's workers and is not counted.
The arms take turns ``--repeats`` times and each figure is the median of its passes (a
single pass of 1–2 s swung 2× on the noisy 2-core VM); ratios are medians of the ratios
within a repeat. Targets on the 2-core machine: (b) ≥ 0.7 × (a) and (b) ≥ 3 × (c).

    python benchmarks/bench_data.py --tiles 2048
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import session_cpu
import stream_stages
import torch
from machine import machine
from moto_endpoint import BUCKET, LOCAL_KEYS, REGION, moto_endpoint

from mpmae.data.format.band_stats import stats_key, valid_mask
from mpmae.data.sources.synth import synthesize
from mpmae.data.stream.normalise import Normaliser
from mpmae.data.stream.stage_clock import StageClock
from mpmae.data.stream.tile_dataset import TileCollate, TileDataset, torch_batches
from mpmae.modalities import MODALITIES, S2_BANDS, TaskKind, resolve_pretext
from mpmae.ray_fixes.embedded_ray import embedded_system_config
from mpmae.storage import StorageOptions
from mpmae.train.config import DataConfig
from mpmae.train.memory_reuse import keep_freed_memory

# The per-sample h5py arm reads a release in MMEarth's own layout; the writer of tiny
# releases is test support, shared with the converter's tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fake_mmearth import write_mmearth_release

PRETEXT = resolve_pretext("all")
CROP = 56  # MMEarth64's training crop

# Other ways to run (b), each measured beside it in the same run (--compare NAME): copy
# cuts tried (docs/data-plane.md) and issue 25 §4's levers (docs/scale.md). ``read``: more
# arguments of ``TileDataset.read``; ``context``: DataContext fields set on the dataset's
# own context; ``consumer``: how batches leave Ray Data (:data:`CONSUMERS`).
VARIANTS = {
    "crop_in_read_task": {"read": {"crop": CROP}},  # cut in the shuffle's scatter, not kept
    "blocks_1024": {"read": {"tiles_per_block": 1024}},
    "blocks_128": {"read": {"tiles_per_block": 128}},
    "blocks_64": {"read": {"tiles_per_block": 64}},
    "no_shuffle": {"read": {"seed": None}},  # blocks are views of the decoded row groups
    "tasks_4_blocks": {"read": {"blocks_per_task": 4}},  # the default before §4
    "tasks_8_blocks": {"read": {"blocks_per_task": 8}},
    "gen_buffer_8": {"context": {"_max_num_blocks_in_streaming_gen_buffer": 8}},
    "no_reservation": {"context": {"op_resource_reservation_enabled": False}},
    "block_views": {"consumer": "block_views"},
    # Ray's default workers for the read tasks: malloc and mimalloc as they come, not
    # keeping freed memory (mpmae.data.stream.worker_memory; the default since §4)
    "no_memory_reuse": {"read": {"worker_env": {}}},
}


def tile_bytes(batch: dict) -> int:
    return sum(v.nbytes for v in batch.values() if hasattr(v, "nbytes"))


def bench_pyarrow(ds: TileDataset, batch_size: int) -> dict:
    """(a): decode every shard's columns into numpy arrays, nothing else."""
    tiles = nbytes = 0
    start, cpu = time.perf_counter(), time.process_time()
    for path in ds.shard_paths("train"):
        pf = pq.ParquetFile(ds.root.fs.open_input_file(path))
        for batch in pf.iter_batches(batch_size=batch_size, columns=list(PRETEXT.columns)):
            arrays = {
                name: col.to_numpy_ndarray() if hasattr(col, "to_numpy_ndarray")
                else col.to_numpy(zero_copy_only=False)
                for name, col in zip(batch.schema.names, batch.columns, strict=True)
            }
            tiles += batch.num_rows
            nbytes += tile_bytes(arrays)
    rate = _rate(tiles, nbytes, time.perf_counter() - start)
    rate["core_ms_per_tile"] = round(1e3 * (time.process_time() - cpu) / tiles, 3)
    return rate


def stream_epochs(ds: TileDataset, batch_size: int, clock_folder: str,
                  read: dict | None = None, context: dict | None = None,
                  consumer: str = "torch_batches"):
    """(b): a function that reads one epoch of Ray Data → raw tensors → normalisation, as a
    training worker sees it (the training defaults: DataConfig's shuffle buffer, the
    Normaliser's crop), and returns its rate and CPU by stage; one epoch is read first, to
    start Ray's worker processes. ``read``, ``context``, ``consumer``: a variant's
    (:data:`VARIANTS`)."""
    # The read tasks use both cores; idle OpenMP threads spinning here would take their CPU.
    torch.set_num_threads(1)
    keep_freed_memory()  # as the training loop does
    norm = Normaliser(ds.manifest.stats, PRETEXT, crop=CROP)
    clock = StageClock(clock_folder)
    data = ds.read("train", PRETEXT, stage_clock=clock, **{"seed": 0, **(read or {})})
    for name, value in (context or {}).items():
        setattr(data.context, name, value)
    batches = CONSUMERS[consumer]

    def epoch() -> dict:
        tiles = nbytes = norm_s = 0
        clock.take()  # what earlier epochs left
        cpu, idle = session_cpu.snapshot(), stream_stages.machine_idle_s()
        start, main_start = time.perf_counter(), time.thread_time()
        first = None
        for raw in batches(data, batch_size):
            nbytes += tile_bytes(raw)
            norm_start = time.thread_time()  # the normaliser runs in this thread alone
            tiles += len(norm(raw)["image"])
            norm_s += time.thread_time() - norm_start
            if first is None:  # the pipeline's start-up, paid once per epoch
                first = (time.perf_counter(), tiles, nbytes)
        wall, main_s = time.perf_counter() - start, time.thread_time() - main_start
        after, idle = session_cpu.snapshot(), stream_stages.machine_idle_s() - idle
        rate = _rate(tiles, nbytes, wall)
        used = session_cpu.core_ms_per_tile(cpu, after, tiles)
        used["normaliser"] = round(1e3 * norm_s / tiles, 3)  # part of the driver's
        used["total_without_normaliser"] = round(  # nor the benchmark's S3 server
            used["total"] - used["normaliser"] - used["s3_endpoint"], 3)
        rate["core_ms_per_tile"] = used
        rate["stages_core_ms_per_tile"] = stream_stages.breakdown(
            session_cpu.seconds_by_role(cpu, after), clock.take(), norm_s, main_s, idle,
            wall, os.cpu_count(), tiles)
        rate["first_batch_s"] = round(first[0] - start, 2)
        rate["after_first_batch"] = _rate(tiles - first[1], nbytes - first[2],
                                          time.perf_counter() - first[0])
        return rate

    epoch()
    return epoch


def _torch_batches(data, batch_size: int) -> Iterator[dict]:
    """As training reads them (DataConfig's shuffle buffer)."""
    return torch_batches(data, batch_size, shuffle_buffer=DataConfig().shuffle_buffer,
                         seed=0, device="cpu")


def _block_views(data, batch_size: int) -> Iterator[dict]:
    """Each block as Arrow, its columns as numpy views of its buffers, cut into batches as
    torch views: no batcher, no copy; a block's last partial batch is dropped."""
    collate = TileCollate()
    for block in data.iter_batches(batch_size=None, batch_format="pyarrow",
                                   prefetch_batches=1):
        arrays = {name: _one_chunk(col).to_numpy_ndarray() if hasattr(col.type, "shape")
                  else col.to_numpy()
                  for name, col in zip(block.column_names, block.columns, strict=True)}
        for first in range(0, block.num_rows - batch_size + 1, batch_size):
            yield collate({k: v[first : first + batch_size] for k, v in arrays.items()})


def _one_chunk(col):
    return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()


CONSUMERS = {"torch_batches": _torch_batches, "block_views": _block_views}


def bench_h5py(h5_path: str, rows: np.ndarray, batch_size: int, stats: dict,
               normalise: bool = True) -> dict:
    """(c): a map-style dataset reading one sample at a time from each HDF5 dataset."""
    names = list(MODALITIES)
    tiles = nbytes = 0
    order = np.random.default_rng(0).permutation(rows)
    prepare = ReferenceSample(stats, crop=56) if normalise else None
    start = time.perf_counter()
    with h5py.File(h5_path, "r") as h5:
        datasets = [h5[n] for n in names]
        meta = h5["metadata"]
        for first in range(0, len(order) - batch_size + 1, batch_size):
            samples = []
            for i in order[first : first + batch_size]:
                sample = {n: d[i] for n, d in zip(names, datasets, strict=True)}
                if prepare:
                    sample = prepare(sample, meta[i]["S2_type"].decode().lower())
                samples.append(sample)
            batch = {n: torch.from_numpy(np.stack([s[n] for s in samples])) for n in samples[0]}
            tiles += batch_size
            nbytes += tile_bytes(batch)
    return _rate(tiles, nbytes, time.perf_counter() - start)


class ReferenceSample:
    """Per-tile numpy normalisation as a reference map-style loader does it: no-data → NaN
    then z-score (S2 by level; B10 dropped from the input), class remaps, one-hot → index,
    one random crop window shared by the pixel modalities."""

    def __init__(self, stats: dict, crop: int) -> None:
        self.crop, self.rng = crop, np.random.default_rng(0)
        self.input = [i for i, b in enumerate(S2_BANDS) if b != "B10"]
        self.stats = {k: (np.asarray(v["mean"], np.float32),
                          np.maximum(np.asarray(v["std"], np.float32), 1e-6))
                      for k, v in stats.items()}
        self.luts = {n: m.class_lookup() for n, m in MODALITIES.items()
                     if m.kind is TaskKind.PIXEL_CLASSES}

    def __call__(self, sample: dict, level: str) -> dict:
        size = sample["sentinel2"].shape[-1]
        top, left = self.rng.integers(0, size - self.crop + 1, 2)
        out = {}
        for name, values in sample.items():
            m = MODALITIES[name]
            if m.kind.is_pixel:
                values = values[:, top : top + self.crop, left : left + self.crop]
            if m.kind is TaskKind.IMAGE_CLASS:
                out[name] = np.int64(values.argmax())
            elif m.kind is TaskKind.PIXEL_CLASSES:
                out[name] = self.luts[name][values[0]]
            else:
                out[name] = self._zscore(name, values, level)
        s2 = out["sentinel2"][self.input]
        out["image"] = np.nan_to_num(s2, nan=0.0)
        return out

    def _zscore(self, name: str, values: np.ndarray, level: str) -> np.ndarray:
        key = stats_key(name, level)
        mean, std = self.stats[key]
        if MODALITIES[name].kind.is_pixel:  # per band: (C,) → (C, 1, 1)
            mean, std = mean[:, None, None], std[:, None, None]
        x = values.astype(np.float32)
        x[~valid_mask(name, values)] = np.nan
        return (x - mean) / std


def _rate(tiles: int, nbytes: int, seconds: float) -> dict:
    return {"tiles": tiles, "seconds": round(seconds, 3),
            "tiles_per_s": round(tiles / seconds, 1),
            "mb_per_s": round(nbytes / seconds / 2**20, 1)}


def run_arms(arms: dict, repeats: int) -> dict:
    """Each arm (name → function returning a rate) once per repeat, in turns, every other
    repeat in reverse order (on the shared VM an arm's neighbours change its figures);
    per arm the median rate and every pass's tiles/s."""
    passes = {name: [] for name in arms}
    for repeat in range(repeats):
        for name in list(arms)[:: 1 if repeat % 2 == 0 else -1]:
            passes[name].append(arms[name]())
    return {name: _median(runs) for name, runs in passes.items()}


def _median(runs: list[dict]) -> dict:
    rate = sorted(runs, key=lambda r: r["tiles_per_s"])[len(runs) // 2]
    out = {**rate, "tiles_per_s_passes": [r["tiles_per_s"] for r in runs]}
    if "after_first_batch" in rate:
        out["first_batch_s_passes"] = [r["first_batch_s"] for r in runs]
        out["core_ms_without_normaliser_passes"] = [
            r["core_ms_per_tile"]["total_without_normaliser"] for r in runs]
        out["stage_passes"] = {stage: [r["stages_core_ms_per_tile"][stage] for r in runs]
                               for stage in stream_stages.STAGES}
    return out


def write_h5_copy(ds: TileDataset, folder: str) -> tuple[str, np.ndarray]:
    """The dataset's train tiles as an official-layout gzip HDF5 (one-hot classes)."""
    table = pq.read_table(ds.shard_paths("train"), filesystem=ds.root.fs)
    arrays = {}
    for name, mod in MODALITIES.items():
        col = table.column(name).combine_chunks()
        if mod.kind is TaskKind.IMAGE_CLASS:
            arrays[name] = np.eye(mod.num_classes, dtype=mod.dtype)[col.to_numpy()]
        else:
            arrays[name] = col.to_numpy_ndarray()
    ids = table.column("tile_id").to_pylist()
    rows = np.arange(len(ids))
    path = write_mmearth_release(folder, arrays, ids, table.column("s2_type").to_pylist(),
                                 {"train": rows.tolist()})
    return str(path), rows


def clock_dir(tmp: str, name: str) -> str:
    path = os.path.join(tmp, "stage-clock", name)
    os.makedirs(path)
    return path


@contextmanager
def s3_copy(tiles: int, size: int, logs: Path) -> Iterator[tuple[str, StorageOptions]]:
    """(URI, storage options) of a copy of the dataset on the local stack's S3 endpoint (a
    moto server, stopped after). It runs in a process of its own, so that its CPU (the
    endpoint's, on other machines in real use) is neither (a)'s nor the stream driver's:
    ``session_cpu`` counts it apart."""
    with moto_endpoint(logs) as (endpoint, _):
        opts = StorageOptions(endpoint, REGION, LOCAL_KEYS["AWS_ACCESS_KEY_ID"],
                              LOCAL_KEYS["AWS_SECRET_ACCESS_KEY"])
        uri = f"s3://{BUCKET}/world"
        synthesize(uri, tiles=tiles, size=size, seed=0, downstream_tiles=0, storage=opts,
                   progress=lambda _: None)
        yield uri, opts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiles", type=int, default=2048)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5, help="passes of each arm")
    parser.add_argument("--no-s3", action="store_true")
    parser.add_argument("--no-h5py", action="store_true", help="leave out (c)")
    parser.add_argument("--compare", nargs="*", default=[], choices=sorted(VARIANTS),
                        help="variants of (b) to run beside it, locally")
    args = parser.parse_args()

    import ray

    # As mpmae's embedded Ray: a Ray of its own, idle workers kept. Ray's default kills an
    # idle worker after 1 s on a small machine, and a variant with workers of its own (a
    # runtime env) then restarted the other arm's workers at every pass, in its figures.
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
             log_to_driver=False, _system_config=embedded_system_config())
    ray.data.DataContext.get_current().enable_progress_bars = False
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "world")
        synthesize(local, tiles=args.tiles, size=args.size, seed=0, downstream_tiles=0,
                   progress=lambda _: None)
        ds = TileDataset.open(local)
        result = {
            "machine": machine(),
            "tiles_train": ds.manifest.split_tiles("train"), "tile_size": args.size,
            "batch": args.batch, "modalities": "all", "repeats": args.repeats,
            "local": run_arms(local_arms(ds, args, tmp), args.repeats),
        }
        if not args.no_s3:
            with s3_copy(args.tiles, args.size, Path(tmp)) as (uri, opts):
                s3_ds = TileDataset.open(uri, opts)
                result["s3"] = run_arms(
                    {"a_pyarrow": lambda: bench_pyarrow(s3_ds, args.batch),
                     "b_stream": stream_epochs(s3_ds, args.batch, clock_dir(tmp, "s3"))},
                    args.repeats)
        result["ratios"] = _ratios(result)
        print(json.dumps(result, indent=1))


def local_arms(ds: TileDataset, args, tmp: str) -> dict:
    arms = {"a_pyarrow": lambda: bench_pyarrow(ds, args.batch),
            "b_stream": stream_epochs(ds, args.batch, clock_dir(tmp, "local"))}
    for name in args.compare:
        arms[f"b_{name}"] = stream_epochs(ds, args.batch, clock_dir(tmp, name),
                                          **VARIANTS[name])
    if not args.no_h5py:
        h5_path, rows = write_h5_copy(ds, os.path.join(tmp, "h5"))
        stats = ds.manifest.stats
        arms["c_h5py"] = lambda: bench_h5py(h5_path, rows, args.batch, stats)
        arms["c_h5py_reads_only"] = lambda: bench_h5py(h5_path, rows, args.batch, stats,
                                                       normalise=False)
    return arms


def _ratios(result: dict) -> dict:
    """Medians over repeats of the ratios within each repeat."""
    def ratio(where: str, num: str, den: str, key: str = "tiles_per_s_passes") -> float:
        r = result[where]
        pairs = zip(r[num][key], r[den][key], strict=True)
        return round(statistics.median(n / d for n, d in pairs), 2)

    out = {}
    for where in ("local", "s3"):
        if where in result:
            out[f"{where}_b_over_a"] = ratio(where, "b_stream", "a_pyarrow")
    local = result["local"]
    for c in ("c_h5py", "c_h5py_reads_only"):
        if c in local:
            out[f"local_b_over_{c}"] = ratio("local", "b_stream", c)
    for v in (k for k in local if k.startswith("b_") and k != "b_stream"):
        out[f"local_b_over_{v}"] = ratio("local", "b_stream", v)
        out[f"local_b_over_{v}_core_ms"] = ratio("local", "b_stream", v,
                                                 "core_ms_without_normaliser_passes")
        out[f"local_b_over_{v}_core_ms_by_stage"] = {
            stage: round(statistics.median(
                b / max(w, 1e-9) for b, w in zip(local["b_stream"]["stage_passes"][stage],
                                                 local[v]["stage_passes"][stage], strict=True)),
                2) for stage in stream_stages.STAGES}
    return out


if __name__ == "__main__":
    main()
