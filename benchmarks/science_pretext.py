"""Does a multi-modal pretext set give a better encoder than Sentinel-2 alone? Prints JSON.

The MMEarth paper's claim: pretraining with every modality as a pretext task ("all")
improves linear probing over reconstructing Sentinel-2 only ("S2"). This runs a small
`mpmae tune` sweep on the synthetic world with equal budgets for both sets (same steps, lr,
mask ratio and seeds; no early stopping), probes each final encoder on the world's
labelled downstream set (9 landscape classes) and, as a floor, randomly initialised
encoders of the same size.

    python benchmarks/science_pretext.py --tiles 1024 --size 32 --steps 600 --seeds 0 1

A few hundred CPU steps are far from the paper's 200 epochs: read the result as what this
budget shows, not as a verdict on the paper.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from machine import machine

from mpmae.config import load_config
from mpmae.data.format.manifest import read_manifest
from mpmae.data.sources.synth import DOWNSTREAM_DIR, synthesize
from mpmae.evaluate.probe import load_probe_set, probe_encoder
from mpmae.modalities import S2_INPUT_BANDS
from mpmae.model import build_encoder
from mpmae.storage import resolve
from mpmae.tune.config import TuneConfig
from mpmae.tune.sweep import sweep

PRETEXT_SETS = ("S2", "all")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=1024)
    parser.add_argument("--size", type=int, default=32, help="tile side = crop side (px)")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--downstream", type=int, default=2000,
                        help="labelled tiles (10%% are the probe's test split)")
    parser.add_argument("--work", default=None, help="folder for data, runs, MLflow")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="science-pretext-"))
    data = work / "world"
    if not (data / "dataset.json").exists():
        synthesize(str(data), tiles=args.tiles, size=args.size, seed=0,
                   downstream_tiles=args.downstream, progress=lambda _: None)
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # Tune's tables; stdout is the JSON
        result = sweep(_config(args, work, data), progress=lambda _: None)
    scores = {p: [r["probe_accuracy"] for r in result.rows if r["pretext"] == p]
              for p in PRETEXT_SETS}
    baseline = _random_init(data, args.size, args.seeds)
    means = {p: statistics.mean(v) for p, v in scores.items()}
    print(json.dumps({
        "machine": machine(),
        "setup": {"tiles": args.tiles, "labelled_tiles": args.downstream,
                  "tile_px": args.size, "steps": args.steps,
                  "batch": args.batch, "lr": args.lr, "seeds": args.seeds, "model": "atto",
                  "probe": "logistic regression on pooled embeddings, 9 landscape classes",
                  "sweep_s": round(time.perf_counter() - started)},
        "probe_accuracy": scores,
        "mean": means,
        "random_init": baseline,
        "random_init_mean": statistics.mean(baseline),
        "all_beats_S2": means["all"] > means["S2"],
        "work": str(work),
    }, indent=2))


def _config(args, work: Path, data: Path) -> TuneConfig:
    return load_config(TuneConfig, None, [
        "name=science-pretext", "sweep_name=science", f"search.pretext={list(PRETEXT_SETS)}",
        f"search.lr=[{args.lr}]", f"search.seed={args.seeds}", "scheduler.kind=none",
        "max_concurrent_trials=1",  # two cores: one trial at a time, the other for data
        f"pretrain.data.uri={data}", f"pretrain.storage.root={work / 'runs'}",
        f"pretrain.mlflow.tracking_uri=sqlite:///{work / 'mlflow.db'}",
        "pretrain.mlflow.system_metrics=false", "pretrain.mlflow.register_as=",
        f"pretrain.model.img_size={args.size}", f"pretrain.train.batch_size={args.batch}",
        f"pretrain.train.max_steps={args.steps}", f"pretrain.train.probe_every={args.steps}",
        f"pretrain.train.log_every={max(args.steps // 10, 1)}",
        f"pretrain.train.checkpoint_every={args.steps}", "pretrain.train.figure_every=0",
        "pretrain.optim.epochs=1000", "pretrain.optim.warmup_epochs=1",
        "pretrain.scaling.cpus_per_worker=0.9", "pretrain.scaling.data_cpus=1",
    ])


def _random_init(data: Path, size: int, seeds: list[int]) -> list[float]:
    stats = read_manifest(resolve(str(data))).stats
    probe = load_probe_set(str(data / DOWNSTREAM_DIR), stats, S2_INPUT_BANDS, img_size=size)
    scores = []
    for seed in seeds:
        torch.manual_seed(seed)
        scores.append(probe_encoder(build_encoder("atto", in_chans=len(S2_INPUT_BANDS)), probe))
    return scores


if __name__ == "__main__":
    main()
