"""Does a multi-modal pretext set give a better encoder than Sentinel-2 alone? Prints JSON.

The MMEarth paper's claim: pretraining with every modality as a pretext task ("all")
improves linear probing over reconstructing Sentinel-2 only ("S2"). This runs an
`mpmae tune` sweep on the synthetic world with equal budgets for every pretext set (same
steps, lr, mask ratio and seeds; no early stopping), then scores every final encoder, and
random-init encoders of the same size drawn with the same seeds, with `mpmae evaluate` on
the world's GEO-Bench-format classification set (9 landscape classes): kNN and the linear
probe, on all training labels and on 5 % of them. Each figure is the mean over seeds with
a Student-t 95 % interval; differences (trained − random, all − S2) are paired by seed.
Beside them: the sweep's online probe (what `mpmae tune` ranks trials by) for the same
encoders, and whether it ranks the sets as the final evaluation does.

    python benchmarks/science_pretext.py                      # S2 and all, 3 seeds
    python benchmarks/science_pretext.py --pretext S2 pix img all --seeds 0 1 2 3

A few hundred CPU steps are far from the paper's 200 epochs: read the result as what this
budget shows, not as a verdict on the paper.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

from machine import machine
from seed_stats import mean_ci95, paired_difference, ranking, rounded
from world_args import add_world_args, prepare_world

from mpmae.config import load_config
from mpmae.data.format.manifest import read_manifest
from mpmae.data.sources.synth import DOWNSTREAM_DIR
from mpmae.data.sources.synth_geobench import CLASSIFICATION, GEOBENCH_DIR
from mpmae.evaluate import open_encoder
from mpmae.modalities import S2_INPUT_BANDS
from mpmae.storage import resolve
from mpmae.train.online_probe import load_probe_set, probe_encoder
from mpmae.tune.config import TuneConfig
from mpmae.tune.sweep import sweep

RANDOM = "random"
PROTOCOLS = ("knn", "linear")
PARTITIONS = ("1.00x_train", "0.05x_train")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # The defaults are the recorded run of docs/science.md.
    add_world_args(parser, steps=600, seeds=[0, 1, 2], downstream=4000, tiles=2048)
    parser.add_argument("--pretext", nargs="+", default=["S2", "all"])
    args = parser.parse_args()
    work, data = prepare_world(args, "science-pretext-")
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # Tune's tables; stdout is the JSON
        result = sweep(_config(args, work, data), progress=lambda _: None)
    sweep_s = time.perf_counter() - started
    trials = {p: sorted((r["seed"], r["trial_id"], r["probe_accuracy"])
                        for r in result.rows if r["pretext"] == p) for p in args.pretext}
    online = {p: [t[2] for t in ts] for p, ts in trials.items()}
    online[RANDOM] = _random_online_probe(data, args.size, args.seeds)
    encoders = {p: [str(Path(resolve(result.sweep_dir).path, "trials", t[1], "encoder"))
                    for t in ts] for p, ts in trials.items()}
    encoders[RANDOM] = [f"random:atto:{s}" for s in args.seeds]
    final = _evaluate(encoders, data / GEOBENCH_DIR / CLASSIFICATION, work)
    report = {
        "machine": machine(),
        "setup": {"tiles": args.tiles, "labelled_tiles": args.downstream,
                  "tile_px": args.size, "steps": args.steps, "batch": args.batch,
                  "lr": args.lr, "seeds": args.seeds, "model": "atto",
                  "pretext": args.pretext, "downstream": f"{CLASSIFICATION} (9 classes)",
                  "sweep_s": round(sweep_s),
                  "total_s": round(time.perf_counter() - started)},
        "online_probe": _summary(online),
        "final": {key: _summary(values) for key, values in final.items()},
        "rankings": {"online_probe": ranking(online),
                     **{key: ranking(values) for key, values in final.items()}},
        "work": str(work),
    }
    print(json.dumps(report, indent=1))
    print(_table(report), file=sys.stderr)


def _config(args, work: Path, data: Path) -> TuneConfig:
    return load_config(TuneConfig, None, [
        "name=science-pretext", "sweep_name=science", f"search.pretext={args.pretext}",
        f"search.lr=[{args.lr}]", f"search.seed={args.seeds}", "scheduler.kind=none",
        "max_concurrent_trials=1",  # two cores: one trial at a time, the other for data
        f"pretrain.data.uri={data}", f"pretrain.storage.root={work / 'runs'}",
        f"pretrain.mlflow.tracking_uri={_tracking(work)}",
        "pretrain.mlflow.system_metrics=false", "pretrain.mlflow.register_as=",
        f"pretrain.model.img_size={args.size}", f"pretrain.train.batch_size={args.batch}",
        f"pretrain.train.max_steps={args.steps}", f"pretrain.train.probe_every={args.steps}",
        f"pretrain.train.log_every={max(args.steps // 10, 1)}",
        f"pretrain.train.checkpoint_every={args.steps}", "pretrain.train.figure_every=0",
        "pretrain.optim.epochs=1000", "pretrain.optim.warmup_epochs=1",
        "pretrain.scaling.cpus_per_worker=0.9", "pretrain.scaling.data_cpus=1",
    ])


def _tracking(work: Path) -> str:
    return f"sqlite:///{work / 'mlflow.db'}"


def _random_online_probe(data: Path, size: int, seeds: list[int]) -> list[float]:
    """The sweep's probe of the random-init encoders ``mpmae evaluate`` scores."""
    stats = read_manifest(resolve(str(data))).stats
    probe = load_probe_set(str(data / DOWNSTREAM_DIR), stats, S2_INPUT_BANDS, img_size=size)
    return [probe_encoder(open_encoder(f"random:atto:{seed}").module, probe) for seed in seeds]


def _evaluate(encoders: dict[str, list[str]], dataset: Path, work: Path) -> dict:
    """``mpmae evaluate`` of every encoder, once per protocol: values[protocol/partition]
    [set] in seed order."""
    names = [e for group in encoders.values() for e in group]
    out: dict[str, dict[str, list[float]]] = {}
    for protocol in PROTOCOLS:
        results = work / f"evaluate-{protocol}.json"
        command = [sys.executable, "-m", "mpmae.cli", "evaluate", *names, str(dataset),
                   "--protocol", protocol, "--seeds", "1", "--results", str(results),
                   "--set", f"mlflow.tracking_uri={_tracking(work)}",
                   *[a for p in PARTITIONS for a in ("--partition", p)]]
        subprocess.run(command, check=True, stdout=sys.stderr)
        rows = json.loads(results.read_text())["results"]
        for partition in PARTITIONS:
            value = {r["encoder"]: r["value"] for r in rows if r["partition"] == partition}
            out[f"{protocol}/{partition}"] = {group: [value[e] for e in members]
                                              for group, members in encoders.items()}
    return out


def _summary(values: dict[str, list[float]]) -> dict:
    """Per set: its values, mean and interval; then paired differences against random
    init and, when both ran, all − S2."""
    out = {name: {"values": [round(v, 4) for v in vs], **rounded(mean_ci95(vs))}
           for name, vs in values.items()}
    for name, vs in values.items():
        if name != RANDOM:
            out[f"{name} - {RANDOM}"] = rounded(paired_difference(vs, values[RANDOM]))
    if "all" in values and "S2" in values:
        out["all - S2"] = rounded(paired_difference(values["all"], values["S2"]))
    return out


def _table(report: dict) -> str:
    """The figures as % means [95 % interval], one line per evaluation, one column per set
    and difference."""
    sections = {"online probe": report["online_probe"], **report["final"]}
    columns = list(report["online_probe"])
    lines = ["".join(f"{c:>22}" for c in ["", *columns])]
    for name, summary in sections.items():
        cells = [f"{name:>22}"]
        for c in columns:
            e = summary[c]
            low, high = e["ci95"] or (None, None)
            ci = "" if low is None else f" [{100 * low:.1f},{100 * high:.1f}]"
            cells.append(f"{100 * e['mean']:.1f}{ci}".rjust(22))
        lines.append("".join(cells))
    lines.append("rankings: " + "; ".join(f"{k}: {' > '.join(v)}"
                                          for k, v in report["rankings"].items()))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
