"""Which weight init pretrains better: MMEarth-train's (``reference``) or ConvNeXt's? JSON.

MMEarth-train's FCMAE init gives the encoder's depthwise and point-wise layers, the decoder
projection and depthwise conv and the pixel heads std 1.0 (``model.init=reference``); ours
is ConvNeXt V2's std 0.02 everywhere (``convnext``). This pretrains an atto MP-MAE on the
synthetic world with each, for equal budgets (same steps, lr, data and seeds), and reports
per run the loss curve (weighted total and the unweighted task losses, averaged over the
last logged tenth) and the online linear probe's accuracy on the world's labelled set (9
landscape classes) at the end.

    python benchmarks/bench_init.py --steps 300 --seeds 0 1

A few hundred CPU steps are far from the paper's 200 epochs: read the result as what this
budget shows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

from machine import machine
from world_args import add_world_args, prepare_world

from mpmae.cluster.connect import connect
from mpmae.config import load_config
from mpmae.train.config import PretrainConfig
from mpmae.train.launch import pretrain

INITS = ("reference", "convnext")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_world_args(parser, steps=300, seeds=[0, 1], downstream=2000)
    parser.add_argument("--pretext", default="all")
    args = parser.parse_args()
    work, data = prepare_world(args, "bench-init-")
    import ray

    started = time.perf_counter()
    runs = {init: [] for init in INITS}
    connect()
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Ray's tables; stdout is the JSON
            for seed in args.seeds:
                for init in INITS:
                    runs[init].append(_run(args, work, data, init, seed))
    finally:
        ray.shutdown()
    print(json.dumps({
        "machine": machine(),
        "setup": {"tiles": args.tiles, "labelled_tiles": args.downstream,
                  "tile_px": args.size, "steps": args.steps, "batch": args.batch,
                  "lr": args.lr, "pretext": args.pretext, "seeds": args.seeds,
                  "model": "atto", "warmup_steps": "one epoch",
                  "probe": "logistic regression on pooled embeddings, 9 landscape classes",
                  "total_s": round(time.perf_counter() - started)},
        "runs": runs,
        "mean": {init: _means(rs) for init, rs in runs.items()},
        "work": str(work),
    }, indent=2))


def _run(args, work: Path, data: Path, init: str, seed: int) -> dict:
    cfg = load_config(PretrainConfig, None, [
        "name=bench-init", f"run_name=init-{init}-seed{seed}", f"data.uri={data}",
        f"storage.root={work / 'runs'}", f"mlflow.tracking_uri=sqlite:///{work / 'mlflow.db'}",
        "mlflow.system_metrics=false", "mlflow.register_as=", f"model.init={init}",
        f"model.pretext={args.pretext}", f"model.img_size={args.size}",
        f"train.batch_size={args.batch}", f"train.max_steps={args.steps}",
        f"train.probe_every={args.steps}", f"train.log_every={max(args.steps // 30, 1)}",
        f"train.checkpoint_every={args.steps}", "train.figure_every=0", f"train.seed={seed}",
        f"optim.lr={args.lr}", "optim.epochs=1000", "optim.warmup_epochs=1",
        "scaling.cpus_per_worker=0.9", "scaling.data_cpus=1",
    ])
    t0 = time.perf_counter()
    result = pretrain(cfg, progress=lambda _: None)
    return {"seed": seed, "seconds": round(time.perf_counter() - t0),
            **_metrics(cfg.mlflow.tracking_uri, result.mlflow_run_id)}


def _metrics(tracking_uri: str, run_id: str) -> dict:
    """The loss curve's start and end (mean of the last logged tenth) and the probe after
    the first step (≈ the init itself) and at the end."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    history = {key: [m.value for m in sorted(client.get_metric_history(run_id, key),
                                             key=lambda m: m.step)]
               for key in client.get_run(run_id).data.metrics
               if key == "loss" or key.startswith("loss/")}
    tail = max(len(history["loss"]) // 10, 1)
    task_keys = [k for k in history if k.startswith("loss/")]
    unweighted = [sum(history[k][i] for k in task_keys) for i in range(len(history["loss"]))]
    return {
        "loss_first": round(history["loss"][0], 4),
        "loss_end": round(statistics.mean(history["loss"][-tail:]), 4),
        "task_loss_sum_first": round(unweighted[0], 4),
        "task_loss_sum_end": round(statistics.mean(unweighted[-tail:]), 4),
        "task_loss_end": {k.split("/", 1)[1]: round(statistics.mean(history[k][-tail:]), 4)
                          for k in task_keys},
        "probe_accuracy_first": round(_first(client, run_id, "probe_accuracy"), 4),
        "probe_accuracy": round(client.get_run(run_id).data.metrics["probe_accuracy"], 4),
    }


def _first(client, run_id: str, key: str) -> float:
    return min(client.get_metric_history(run_id, key), key=lambda m: m.step).value


def _means(runs: list[dict]) -> dict:
    keys = ("loss_end", "task_loss_sum_end", "probe_accuracy_first", "probe_accuracy")
    return {k: round(statistics.mean(r[k] for r in runs), 4) for k in keys}


if __name__ == "__main__":
    main()
