"""Cost curves of the data plane: how each cost grows with the tiles and with the shards;
prints JSON and writes a log-log figure (with matplotlib).

Two sweeps of synthetic datasets (small tiles, ``--size``, every modality):
- ``tiles``: ``--tiles`` (2k → 1M) in shards of ``--tiles-per-shard`` (at least
  ``--min-shards``), MMEarth64's ~1,000 tiles a shard;
- ``shards``: ``--shard-sweep-tiles`` tiles in ``--shards`` shards (16 → 4,000).

Each dataset, in each arm of ``--arms`` (``local``: a folder; ``s3``: a moto endpoint in a
process of its own, reached through ``infra/local/s3_proxy.py`` adding ``--latency-ms`` to
every request), is measured phase by phase (``scale_phases``): ``data synth`` and ``data
convert`` (the MMEarth release layout, written from the train split) in tiles per CPU
second; ``data verify`` in core-ms per tile; ``TileDataset.open`` (every shard listed); launch →
first batch of the stream (open, plan, first read: a run's start-up less Ray's workers and
the model, which cost the same at any size; not a full ``mpmae pretrain``); the steady
CPU per delivered tile; peak driver RSS, largest Ray worker RSS and object-store bytes; a
resume half-way through the epoch. Opt-in phases (``--phases``, default the ones above):
``first_step``, a real ``mpmae pretrain`` (one worker, a 16 px model) launched on each
dataset of the shard sweep on S3 and timed to its first step's line, the datasets' launches
taking turns (``--first-step-repeats`` rounds) and the requests before that line counted
(``scale_commands``); ``embed``, ``mpmae evaluate``'s
embed stage (random:atto, knn) on synthetic GEO-Bench v1 datasets of ``--embed-samples``
samples, in CPU per sample, its slope against the samples. The stream, the resume and
convert stop at their caps (``--stream-cap``, ``--convert-cap``), and the S3 arm at
``--s3-cap`` tiles: said in the JSON. Each cost's log-log slope against the sweep's work
is printed; above 1.1 it is flagged "grows faster than the work".

    python benchmarks/bench_scale.py                       # the full run (~40 min, 2 cores)
    python benchmarks/bench_scale.py --tiles 2000 16000 128000 --arms local s3
    python benchmarks/bench_scale.py --tiles --shards 16 4000 --arms s3 --phases first_step
    python benchmarks/bench_scale.py --tiles --shards --phases embed --embed-samples 256 2048
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import scale_commands
import scale_phases as phases
from bench_data import write_h5_copy
from machine import machine
from moto_endpoint import moto_endpoint
from slopes import figure, slope, verdict

from mpmae.data.stream.tile_dataset import TileDataset
from mpmae.modalities import resolve_pretext
from mpmae.ray_fixes.embedded_ray import embedded_system_config

# Each cost as a total over the work (a per-tile figure times the tiles: what the whole
# dataset costs, at the per-tile rate measured), so that a slope of 1 means proportional.
COSTS = {
    "synth_cpu_s": lambda d: phases.ours(d["synth"]),
    "convert_cpu_s": lambda d: d.get("convert") and phases.ours(d["convert"]),
    "verify_cpu_s": lambda d: phases.ours(d["verify"]),
    "open_s": lambda d: d["open"]["wall_s"],
    "first_batch_s": lambda d: d["stream"]["first_batch_s"],
    "stream_cpu_s_per_epoch": lambda d: d["stream"]["core_ms_per_tile"]
    * d["stream"]["epoch_tiles"] / 1e3,
    "driver_rss_mb": lambda d: d["stream"]["peaks"]["driver_rss_mb"],
    "driver_rss_growth_mb": lambda d: d["stream"]["peaks"]["driver_rss_mb"]
    - d["stream"]["peaks"]["driver_rss_start_mb"],
    "ray_worker_rss_mb": lambda d: d["stream"]["peaks"]["ray_worker_rss_mb"],
    "object_store_mb": lambda d: d["stream"]["peaks"]["object_store_mb"],
    "resume_first_batch_s": lambda d: d["resume"]["first_batch_s"],
    "resume_plan_cpu_s": lambda d: d["resume"]["plan_cpu_s"],
    "first_step_s": lambda d: d["first_step"]["first_step_s"],
}
# The phases of a dataset in an arm (synth always runs: the others need the dataset).
PHASES = ("verify", "open", "stream", "resume", "convert", "first_step")
DEFAULT_PHASES = ("verify", "open", "stream", "resume", "convert")


def main() -> None:
    args = parse_args()
    import ray

    # address="local": a Ray of its own, never one another job on the machine started;
    # idle workers kept, as in mpmae's embedded Ray
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
             log_to_driver=False, object_store_memory=args.object_store_mb * 2**20,
             _system_config=embedded_system_config())
    ray.data.DataContext.get_current().enable_progress_bars = False
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        result = run(args, work)
    finally:
        ray.shutdown()
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=1))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tiles", type=int, nargs="*", default=[2000, 16000, 128000, 1000000])
    p.add_argument("--tiles-per-shard", type=int, default=1000)
    p.add_argument("--min-shards", type=int, default=16)
    p.add_argument("--shards", type=int, nargs="*", default=[16, 1000, 4000])
    p.add_argument("--shard-sweep-tiles", type=int, default=16000)
    p.add_argument("--arms", nargs="+", choices=["local", "s3"], default=["local", "s3"])
    p.add_argument("--size", type=int, default=16, help="tile side (px)")
    p.add_argument("--pretext", default="all", help="the stream's pretext set")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--latency-ms", type=float, default=30.0)
    p.add_argument("--stream-cap", type=int, default=131072, help="tiles streamed at most")
    p.add_argument("--convert-cap", type=int, default=131072,
                   help="largest dataset converted (its release is written first)")
    p.add_argument("--s3-cap", type=int, default=131072, help="largest dataset on S3")
    p.add_argument("--object-store-mb", type=int, default=1024)
    p.add_argument("--phases", nargs="+", choices=[*PHASES, "embed"],
                   default=list(DEFAULT_PHASES), help="what to measure (synth always runs)")
    p.add_argument("--embed-samples", type=int, nargs="*", default=[256, 2048],
                   help="GEO-Bench samples embedded (phase embed)")
    p.add_argument("--first-step-repeats", type=int, default=1,
                   help="pretrain launches a dataset (phase first_step): the fastest counts")
    p.add_argument("--write-latency-ms", type=float, default=None,
                   help="the S3 proxy's latency while synth writes (default --latency-ms; "
                        "0 writes 4,000 shards in minutes, its figures then not at 30 ms)")
    p.add_argument("--figure", default="bench_scale.png", help="'' for none")
    p.add_argument("--work", default=None, help="folder for the datasets (default: temporary)")
    return p.parse_args(argv)


def plan(args: argparse.Namespace) -> dict[str, list[tuple[int, int]]]:
    """sweep → its (tiles, shards) datasets."""
    return {
        "tiles": [(n, max(args.min_shards, n // args.tiles_per_shard)) for n in args.tiles],
        "shards": [(args.shard_sweep_tiles, s) for s in args.shards],
    }


def run(args: argparse.Namespace, work: Path) -> dict:
    pretext = resolve_pretext(args.pretext)
    sweeps = plan(args)
    warm_up(work, args, pretext)
    datasets: dict[str, dict] = {}
    if set(args.phases) - {"first_step", "embed"}:
        for tiles, shards in sorted({d for ds in sweeps.values() for d in ds}):
            key = f"{tiles}x{shards}"
            datasets[key] = measure_dataset(args, work, tiles, shards, pretext)
            print(f"{key}: {json.dumps(datasets[key])}", file=sys.stderr, flush=True)
    if "first_step" in args.phases and "s3" in args.arms:
        for key, figures in first_step_sweep(args, work, sweeps["shards"]).items():
            datasets.setdefault(key, {}).setdefault("s3", {}).update(figures)
    curves = {sweep: {arm: costs(datasets, points, arm, sweep) for arm in args.arms}
              for sweep, points in sweeps.items()}
    result = {
        "machine": machine(), "tile_size": args.size, "pretext": pretext.name,
        "latency_ms": args.latency_ms, "object_store_mb": args.object_store_mb,
        "caps": {"stream_tiles": args.stream_cap, "convert_tiles": args.convert_cap,
                 "s3_tiles": args.s3_cap},
        "phases": args.phases,
        "datasets": datasets,
        "slopes": {sweep: {arm: {name: {"slope": slope(pts), "verdict": verdict(slope(pts))}
                                 for name, pts in by_cost.items()}
                           for arm, by_cost in by_arm.items()}
                   for sweep, by_arm in curves.items()},
        "targets": targets(datasets, sweeps, args),
    }
    if "embed" in args.phases:
        result["embed"] = embed_curve(args, work)
    if args.figure:
        result["figure"] = figure({f"{sweep} ({arm})": by_cost
                                   for sweep, by_arm in curves.items()
                                   for arm, by_cost in by_arm.items() if by_cost},
                                  args.figure) or "matplotlib is not installed: no figure"
    return result


def warm_up(work: Path, args, pretext) -> None:
    """One small stream, not measured: Ray's worker processes start and Ray Data's modules
    load once, not in the first dataset's figures."""
    arm = phases.Arm("local", folder=str(work))
    phases.synth(arm, "warm-up", 512, args.size, 64)
    phases.stream(arm, "warm-up", pretext, args.batch, 512)
    shutil.rmtree(arm.uri("warm-up"), ignore_errors=True)


def measure_dataset(args, work: Path, tiles: int, shards: int, pretext) -> dict:
    """Every phase on one dataset, in each arm; its folders are removed after."""
    per_shard = max(1, tiles // shards)
    name = f"world-{tiles}x{shards}"
    out: dict = {"tiles": tiles, "shards_asked": shards, "tiles_per_shard": per_shard}
    local = phases.Arm("local", folder=str(work))
    release, tile_bytes = None, 0
    try:
        if "local" in args.arms or "convert" in args.phases:  # convert reads the local one
            out["local"] = measure_arm(args, local, name, tiles, per_shard, pretext)
        if tiles <= args.convert_cap and "convert" in args.phases:
            release = str(work / f"release-{name}")
            ds = TileDataset.open(local.uri(name), check=False)
            write_h5_copy(ds, release)
            tile_bytes = phases.tile_bytes(ds)
            out["local"]["convert"] = phases.convert(local, release, f"conv-{name}",
                                                     out["local"]["synth"]["train_tiles"],
                                                     per_shard, tile_bytes)
        if "s3" in args.arms and tiles <= args.s3_cap:
            with moto_endpoint(work) as (upstream, _):
                s3 = phases.Arm("s3", upstream=upstream, latency_ms=args.latency_ms)
                out["s3"] = measure_arm(args, s3, name, tiles, per_shard, pretext)
                if release:
                    out["s3"]["convert"] = phases.convert(s3, release, f"conv-{name}",
                                                          out["s3"]["synth"]["train_tiles"],
                                                          per_shard, tile_bytes)
    finally:
        for path in work.glob(f"*{name}"):
            shutil.rmtree(path, ignore_errors=True)
    if "local" not in args.arms:
        out.pop("local", None)
    return out


def first_step_sweep(args, work: Path, points: list[tuple[int, int]]) -> dict[str, dict]:
    """The shard sweep's datasets written on one S3 endpoint, then ``mpmae pretrain``
    launched on each in turn, round by round (phase ``first_step``): key → figures."""
    names = {f"{tiles}x{shards}": (f"world-{tiles}x{shards}", tiles, shards)
             for tiles, shards in points}
    out: dict[str, dict] = {}
    with moto_endpoint(work) as (upstream, _):
        arm = phases.Arm("s3", upstream=upstream, latency_ms=args.latency_ms)
        for key, (name, tiles, shards) in names.items():
            out[key] = {"synth": phases.synth(writer_arm(args, arm), name, tiles, args.size,
                                              max(1, tiles // shards))}
        launched = scale_commands.first_steps(arm, [n for n, _, _ in names.values()],
                                              args.first_step_repeats)
    for key, (name, _, _) in names.items():
        out[key]["first_step"] = launched[name]
        print(f"{key} first step: {json.dumps(out[key])}", file=sys.stderr, flush=True)
    return out


def writer_arm(args, arm: phases.Arm) -> phases.Arm:
    """The arm datasets are written through (``--write-latency-ms``)."""
    return arm if args.write_latency_ms is None else replace(arm,
                                                             latency_ms=args.write_latency_ms)


def measure_arm(args, arm: phases.Arm, name: str, tiles: int, per_shard: int,
                pretext) -> dict:
    """The selected phases (``convert``: the caller's) on the dataset written first."""
    out = {"synth": phases.synth(writer_arm(args, arm), name, tiles, args.size, per_shard)}
    run = {
        "verify": lambda: phases.verify(arm, name, tiles),
        "open": lambda: phases.open_only(arm, name),
        "stream": lambda: phases.stream(arm, name, pretext, args.batch, args.stream_cap),
        "resume": lambda: phases.resume(arm, name, pretext, args.batch, args.stream_cap),
    }
    out.update({phase: measure() for phase, measure in run.items() if phase in args.phases})
    return out


def embed_curve(args, work: Path) -> dict:
    """``mpmae evaluate``'s embed stage at each of ``--embed-samples``, and the slope of
    its CPU against the samples."""
    scale_commands.embed(work, min(args.embed_samples), args.size)  # warm-up, not counted
    sizes = {n: scale_commands.embed(work, n, args.size) for n in args.embed_samples}
    points = [(f["samples"], f["cpu_s"]) for f in sizes.values()]
    return {"by_samples": sizes, "slope_cpu_vs_samples": slope(points),
            "verdict": verdict(slope(points))}


def costs(datasets: dict, points: list[tuple[int, int]], arm: str,
          sweep: str) -> dict[str, list[tuple[float, float]]]:
    """cost name → (work, cost) over the sweep's datasets measured in ``arm``."""
    out: dict[str, list] = {}
    for tiles, shards in points:
        d = datasets.get(f"{tiles}x{shards}", {}).get(arm)
        if d is None:
            continue
        work = tiles if sweep == "tiles" else d["synth"]["shards"]
        for name, cost in COSTS.items():
            try:
                value = cost(d)
            except KeyError:  # its phase was not selected
                continue
            if value is not None:
                out.setdefault(name, []).append((work, round(value, 4)))
    return out


def targets(datasets: dict, sweeps: dict, args) -> dict:
    """Issue 25 §2's targets, each with the figures it was judged on (None: not measured)."""
    def get(tiles: int, shards: int, arm: str) -> dict | None:
        return datasets.get(f"{tiles}x{shards}", {}).get(arm)

    by_tiles = sweeps["tiles"]
    base = next(((n, s) for n, s in by_tiles if n == 16000), None)
    big = max(by_tiles, default=None)
    out = {}
    arm = "local" if "local" in args.arms else "s3"  # the local arm's, where it ran
    a, b = (get(*base, arm), get(*big, arm)) if base and big and big != base else (None, None)
    if a and b and "stream" in a and "stream" in b:
        ratio = round(b["stream"]["core_ms_per_tile"] / a["stream"]["core_ms_per_tile"], 3)
        out["cpu_per_tile_largest_within_1.2x_of_16k"] = {
            "16k": a["stream"]["core_ms_per_tile"], "largest": b["stream"]["core_ms_per_tile"],
            "largest_tiles": big[0], "arm": arm, "ratio": ratio, "met": ratio <= 1.2}
        # the phase's own growth: this process made the datasets too, and kept some of it
        own = [d["stream"]["peaks"]["driver_rss_mb"] - d["stream"]["peaks"]["driver_rss_start_mb"]
               for d in (a, b)]
        growth = own[1] - own[0]
        out["driver_rss_growth_16k_to_largest_at_most_300mb"] = {
            "open_and_stream_mb": own, "growth_mb": growth,
            "peak_mb": [d["stream"]["peaks"]["driver_rss_mb"] for d in (a, b)],
            "largest_tiles": big[0], "arm": arm, "met": growth <= 300}
    shard_points = sweeps["shards"]
    if shard_points and "s3" in args.arms:
        lo, hi = (get(*min(shard_points, key=lambda p: p[1]), "s3"),
                  get(*max(shard_points, key=lambda p: p[1]), "s3"))
        if lo and hi and "first_step" in args.phases:
            extra = round(hi["first_step"]["first_step_s"] - lo["first_step"]["first_step_s"], 2)
            out["first_step_most_shards_s3_at_most_fewest_plus_15s"] = {
                "fewest_s": lo["first_step"]["first_step_s"],
                "most_s": hi["first_step"]["first_step_s"],
                "shards": [lo["synth"]["shards"], hi["synth"]["shards"]], "extra_s": extra,
                "met": extra <= 15}
        if lo and hi and "stream" in args.phases:
            extra = round(hi["stream"]["first_batch_s"] - lo["stream"]["first_batch_s"], 2)
            out["first_batch_most_shards_s3_at_most_fewest_plus_15s"] = {
                "fewest_s": lo["stream"]["first_batch_s"], "most_s": hi["stream"]["first_batch_s"],
                "shards": [lo["synth"]["shards"], hi["synth"]["shards"]], "extra_s": extra,
                "met": extra <= 15}
    resumes = [d[arm]["resume"] for d in datasets.values() for arm in args.arms
               if "resume" in d.get(arm, {})]
    out["resume_skips_without_reading"] = {
        "met": not any(r["read_skipped_tiles"] for r in resumes) if resumes else None,
        "tiles_read_over_planned": [[r["tiles_read"], r["tiles_planned"], r["epoch_tiles"]]
                                    for r in resumes]}
    converts = [d["local"]["convert"] for d in (datasets[f"{n}x{s}"] for n, s in by_tiles)
                if "convert" in d.get("local", {})]
    in_ray = bool(converts) and all(c["cpu_s"]["ray_workers"] > 0 for c in converts)
    convert_slope = slope(costs(datasets, by_tiles, "local", "tiles").get("convert_cpu_s", []))
    out["convert_parallel_and_flat_per_core"] = {
        "ran_in_ray_workers": in_ray, "slope_cpu_vs_tiles": convert_slope,
        "tiles_per_core_s": [c["tiles_per_core_s"] for c in converts],
        "met": in_ray and convert_slope is not None and convert_slope <= 1.1 if converts
        else None}
    return out


if __name__ == "__main__":
    main()
