"""Start-up on object storage at many shards: ``TileDataset.open`` (every shard checked
present and of its size, as a run's driver does before any worker starts); prints JSON.

The same tiles are written in few and in many shards to a real S3 endpoint (a moto server
in a process of its own) and opened through ``infra/local/s3_proxy.py``, which delays every
request as a far-away S3 does (30 ms by default) and counts them. Each shard count is opened
the way mpmae does it now (``now``: no footer read; dataset.json records each shard's row
groups and size, and one LIST of each split's folder, 1,000 objects a page, finds them)
and, for comparison, the way it did two versions before (``before``: a HEAD and a GET per
footer, 16 in flight, one split after another). ``--readers``: other numbers of footers in
flight (``mpmae.data.stream.tile_dataset.FOOTER_READERS``), which only a manifest of older
mpmae (no row groups: one GET per footer) uses. This is start-up's data part only, not
the time to a run's first step (Ray, workers and the model add their own, the same at any
shard count). Target: at 4,000 shards on a 30 ms S3, at most the 16-shard time + 15 s.
The proxy runs in a process of its own, fresh for each pass; the CPU seconds of the driver
(our code and pyarrow's S3 client), the proxy and the moto endpoint are reported apart: on
a small machine the proxy's and the endpoint's, not the latency, can bound the many-shard
arms (a real S3 serves in parallel, on other machines).

    python benchmarks/bench_startup.py --tiles 4000 --shards 16 1000 4000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
from latency_proxy import LatencyProxy
from machine import machine
from moto_endpoint import BUCKET, LOCAL_KEYS, REGION, moto_endpoint

import mpmae.data.stream.tile_dataset as tile_dataset
from mpmae.data.format.shards import check_shard, open_shard
from mpmae.data.sources.synth import synthesize
from mpmae.data.stream.tile_dataset import TileDataset
from mpmae.storage import StorageOptions


def open_before(uri: str, opts: StorageOptions) -> TileDataset:
    """``TileDataset.open`` as it was before one-request footers: per split, 16 threads each
    opening a shard by its path (a HEAD for the size) and reading its footer (a GET)."""
    ds = TileDataset.open(uri, opts, check=False)
    schema = ds.manifest.schema()
    for split in ds.manifest.splits:
        infos = ds.manifest.shards(split)
        with ThreadPoolExecutor(max_workers=16) as pool:
            metas = list(pool.map(lambda info: open_shard(ds.root, info.path).metadata, infos))
        for info, meta in zip(infos, metas, strict=True):
            check_shard(ds.root, info, meta, schema)
    return ds


def open_now(readers: int):
    def run(uri: str, opts: StorageOptions) -> TileDataset:
        tile_dataset.FOOTER_READERS = readers
        return TileDataset.open(uri, opts)
    return run


def measure(open_dataset, uri: str, upstream: str, latency_ms: float,
            endpoint: psutil.Process, repeats: int) -> dict:
    """The pass of median wall time of ``repeats`` opens, each through a fresh proxy."""
    passes = [one_open(open_dataset, uri, upstream, latency_ms, endpoint)
              for _ in range(repeats)]
    median = sorted(passes, key=lambda p: p["open_s"])[len(passes) // 2]
    shards = median.pop("shards")
    return {**median, "open_s_passes": [p["open_s"] for p in passes],
            "requests_per_shard": round(median["requests"] / shards, 3)}


def one_open(open_dataset, uri: str, upstream: str, latency_ms: float,
             endpoint: psutil.Process) -> dict:
    """One open: its wall time, the requests the proxy saw and the CPU seconds of the driver
    (this process: our code and pyarrow's S3 client), the proxy and the endpoint."""
    with LatencyProxy(upstream, latency_ms) as proxy:
        keys = (LOCAL_KEYS["AWS_ACCESS_KEY_ID"], LOCAL_KEYS["AWS_SECRET_ACCESS_KEY"])
        processes = (psutil.Process(), psutil.Process(proxy.process.pid), endpoint)
        cpu_before = [_cpu(p) for p in processes]
        began = time.perf_counter()
        ds = open_dataset(uri, StorageOptions(proxy.endpoint, REGION, *keys))
        wall = time.perf_counter() - began
        cpu = [_cpu(p) - b for p, b in zip(processes, cpu_before, strict=True)]
    return {"open_s": round(wall, 3), "requests": proxy.requests,
            "shards": sum(len(s) for s in ds.manifest.splits.values()),
            "cpu_s": {role: round(c, 2)
                      for role, c in zip(("driver", "proxy", "endpoint"), cpu, strict=True)}}


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiles", type=int, default=4000)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--shards", type=int, nargs="+", default=[16, 1000, 4000],
                        help="shard counts (about: each split's last shard may be smaller)")
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--readers", type=int, nargs="*", default=[16, 128],
                        help="other footer reader counts to try at the largest shard count")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-before", action="store_true", help="leave out the old way")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, moto_endpoint(Path(tmp)) as (upstream, server):
        result = run(args, upstream, server)
    print(json.dumps(result, indent=1))


def run(args, upstream: str, endpoint: psutil.Process) -> dict:
    default_readers = tile_dataset.FOOTER_READERS
    result = {"machine": machine(), "measures": "TileDataset.open, every shard checked present "
              "and of its size; not the time to a run's first step",
              "tiles": args.tiles, "tile_size": args.size, "latency_ms": args.latency_ms,
              "repeats": args.repeats, "footer_readers": default_readers, "by_shards": {}}
    keys = (LOCAL_KEYS["AWS_ACCESS_KEY_ID"], LOCAL_KEYS["AWS_SECRET_ACCESS_KEY"])
    for count in args.shards:
        uri = f"s3://{BUCKET}/world-{count}"
        began = time.perf_counter()
        manifest = synthesize(uri, tiles=args.tiles, size=args.size, seed=0,
                              downstream_tiles=0, tiles_per_shard=max(1, args.tiles // count),
                              storage=StorageOptions(upstream, REGION, *keys),
                              progress=lambda _: None)
        arms = {"shards": sum(len(s) for s in manifest.splits.values()),
                "write_s": round(time.perf_counter() - began, 1)}
        ways = {"now": open_now(default_readers)}
        if not args.no_before:
            ways["before"] = open_before
        if count == max(args.shards):
            ways.update({f"now_{n}_readers": open_now(n) for n in args.readers})
        for name, way in ways.items():
            arms[name] = measure(way, uri, upstream, args.latency_ms, endpoint, args.repeats)
        tile_dataset.FOOTER_READERS = default_readers
        result["by_shards"][str(count)] = arms
        print(f"{count} shards: {json.dumps(arms)}", file=sys.stderr, flush=True)
    smallest, largest = (result["by_shards"][str(n)]["now"]["open_s"]
                         for n in (min(args.shards), max(args.shards)))
    result["largest_minus_smallest_s"] = round(largest - smallest, 3)
    return result


if __name__ == "__main__":
    main()
