"""Ray's overhead on pretraining: the Ray Train run vs a plain single-process PyTorch loop.

Same model (atto, `all` pretext set, 56 px crops), same data (Parquet shards of 64 px tiles),
same batch and CPU count, one run. The plain loop reads the shards with pyarrow in the
training process; the Ray run streams them through Ray Data into one Ray Train worker.
Both report steady-state tiles/s (start-up excluded; every later stall, report and
checkpoint included) and the fraction of step time spent waiting for data; the Ray run also
lists each logging window's tiles/s, so an epoch boundary shows as a dip. The runs
alternate ``--repeats`` times; the overhead is the median over the repeats. Prints JSON.
Target on the 2-core machine: overhead ≤ 15 %.

The overhead splits in two, measured by a third run between them: the plain loop itself
(pyarrow reads in the training process, no Ray Data, no reports) inside one Ray Train
worker of the embedded Ray. Plain → that is what running in a Ray Train worker costs (Ray's
resident processes, Ray Train's actors, the worker process itself); that → the Ray run is
what our pipeline costs (Ray Data stream, reports, MLflow, checkpoints).

    python benchmarks/bench_train.py --steps 40
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time

import numpy as np
import pyarrow.parquet as pq
import torch
from machine import machine

from mpmae.cluster.connect import connect
from mpmae.config import from_dict, load_config, override, to_dict
from mpmae.data.sources.synth import synthesize
from mpmae.data.stream.normalise import Normaliser
from mpmae.data.stream.tile_dataset import TileCollate, TileDataset
from mpmae.model import MPMAE, MPMAEConfig
from mpmae.train.config import PretrainConfig
from mpmae.train.launch import pretrain
from mpmae.train.memory_reuse import keep_freed_memory


def plain_batches(ds: TileDataset, columns: list[str], batch: int, rng: np.random.Generator):
    """Endless raw batches: shards in a random order, each read in batch-sized slices."""
    collate = TileCollate()
    while True:
        for path in rng.permutation(ds.shard_paths("train")):
            pf = pq.ParquetFile(ds.root.fs.open_input_file(str(path)))
            for record in pf.iter_batches(batch_size=batch, columns=columns):
                if record.num_rows < batch:
                    continue
                yield collate({name: _numpy(col) for name, col in
                               zip(record.schema.names, record.columns, strict=True)})


def _numpy(column) -> np.ndarray:
    if hasattr(column, "to_numpy_ndarray"):
        return column.to_numpy_ndarray()
    return column.to_numpy(zero_copy_only=False)


def plain_loop(ds: TileDataset, cfg: PretrainConfig, steps: int, warmup: int) -> dict:
    """A single-process PyTorch loop with the same model, optimiser and normalisation."""
    torch.set_num_threads(os.cpu_count())
    keep_freed_memory()  # as the training loop does
    torch.manual_seed(0)
    model = MPMAE(MPMAEConfig(size="atto", pretext="all", img_size=56))
    optimizer = torch.optim.AdamW(model.param_groups(0.05), lr=1e-3, betas=(0.9, 0.95))
    norm = Normaliser(ds.manifest.stats, model.pretext, crop=56).train()
    batches = plain_batches(ds, list(model.pretext.columns), cfg.train.batch_size,
                            np.random.default_rng(0))
    wait = busy = 0.0
    for step in range(warmup + steps):
        t0 = time.perf_counter()
        raw = next(batches)
        t1 = time.perf_counter()
        output = model(norm(raw))
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t2 = time.perf_counter()
        if step >= warmup:
            wait, busy = wait + t1 - t0, busy + t2 - t1
    tiles = steps * cfg.train.batch_size
    return {"tiles_per_s": round(tiles / (wait + busy), 2),
            "data_wait_fraction": round(wait / (wait + busy), 3)}


def _plain_in_worker(config: dict) -> None:
    """Ray Train entry point: the plain loop, where a Ray Train worker runs its loop; its
    figures go to a file (Ray Train keeps reported metrics only with a checkpoint)."""
    cfg = from_dict(PretrainConfig, config["cfg"])
    result = plain_loop(TileDataset.open(cfg.data.uri), cfg, config["steps"], warmup=3)
    with open(config["out"], "w") as out:
        json.dump(result, out)


def plain_in_ray_train(cfg: PretrainConfig, steps: int, storage: str) -> dict:
    """The plain loop in one Ray Train worker of the embedded Ray (same CPUs as the Ray run):
    what running inside Ray Train costs before any of our pipeline runs."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    out = os.path.join(storage, f"{cfg.run_name}.json")  # the worker runs on this machine
    started = connect(cfg.scaling.address)
    try:
        TorchTrainer(
            _plain_in_worker,
            train_loop_config={"cfg": to_dict(cfg), "steps": steps, "out": out},
            scaling_config=ScalingConfig(
                num_workers=1, resources_per_worker={"CPU": cfg.scaling.cpus_per_worker}),
            run_config=RunConfig(name=cfg.run_name, storage_path=storage)).fit()
    finally:
        if started:
            ray.shutdown()
    with open(out) as f:
        return json.load(f)


def ray_run(cfg: PretrainConfig) -> dict:
    """The real `mpmae pretrain` path; throughput from the metrics it logged."""
    import mlflow

    start = time.perf_counter()
    result = pretrain(cfg, progress=lambda _: None)
    wall = time.perf_counter() - start
    client = mlflow.MlflowClient(result.tracking_uri)
    rates = [m.value for m in client.get_metric_history(result.mlflow_run_id, "tiles_per_s")]
    waits = [m.value for m in client.get_metric_history(result.mlflow_run_id,
                                                        "data_wait_fraction")]
    # The first window holds start-up (worker start, data pipeline start, first reads).
    # Windows are equal step counts, so their harmonic mean is tiles over time: stalls count.
    return {"tiles_per_s": round(statistics.harmonic_mean(rates[1:]), 2),
            "data_wait_fraction": round(statistics.median(waits[1:]), 3),
            "wall_s_including_startup": round(wall, 1),
            "window_tiles_per_s": [round(r, 1) for r in rates]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiles", type=int, default=768)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2, help="plain/Ray pairs, alternated")
    args = parser.parse_args()
    cpus = os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MPMAE_HOME"] = tmp
        data = os.path.join(tmp, "world")
        synthesize(data, tiles=args.tiles, size=64, seed=0, downstream_tiles=0,
                   progress=lambda _: None)
        log_every = 5
        cfg = load_config(PretrainConfig, None, [
            f"data.uri={data}", "model.size=atto", "model.pretext=all", "model.img_size=56",
            f"train.batch_size={args.batch}", f"train.max_steps={args.steps + log_every}",
            f"train.log_every={log_every}", "train.figure_every=0",
            f"train.checkpoint_every={10 * args.steps}", "scaling.num_workers=1",
            f"scaling.cpus_per_worker={cpus - 0.5}", "scaling.data_cpus=0.5",
            "mlflow.system_metrics=false", "mlflow.register_as=", "run_name=bench",
        ])
        # Alternate the three so that a slow spell of a shared machine hits all alike.
        plain, in_worker, ray_runs = [], [], []
        for i in range(args.repeats):
            plain.append(plain_loop(TileDataset.open(data), cfg, args.steps, warmup=3))
            in_worker.append(plain_in_ray_train(override(cfg, {"run_name": f"plain{i}"}),
                                                args.steps, os.path.join(tmp, "runs")))
            ray_runs.append(ray_run(override(cfg, {"run_name": f"bench{i}"})))
    overheads = _costs(plain, ray_runs)
    print(json.dumps({
        "machine": machine(),
        "model": "atto, pretext all, 56px crops of 64px tiles",
        "batch": args.batch, "steps": args.steps, "torch_threads": math.ceil(cpus - 0.5),
        "plain_pytorch_pyarrow": plain, "plain_loop_in_ray_train_worker": in_worker,
        "ray_train": ray_runs,
        "ray_overhead_per_repeat": overheads,
        "ray_overhead": statistics.median(overheads),
        "of_which_ray_train_worker_per_repeat": _costs(plain, in_worker),
        "of_which_our_pipeline_per_repeat": _costs(in_worker, ray_runs),
    }, indent=1))


def _costs(base: list[dict], runs: list[dict]) -> list[float]:
    """1 - tiles/s of each run over its repeat's base run."""
    return [round(1 - r["tiles_per_s"] / b["tiles_per_s"], 3)
            for b, r in zip(base, runs, strict=True)]


if __name__ == "__main__":
    main()
