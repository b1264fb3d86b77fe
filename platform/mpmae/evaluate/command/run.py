"""``mpmae evaluate ENCODER DATASET …``: a frozen encoder scored on GEO-Bench datasets.

For each dataset: bands matched by name (MMEarth's fill announced and recorded), inputs
normalised and brought to a multiple of the patch size, every needed sample embedded once
(one Ray job), then one Ray job per (partition, seed) trains and scores the protocol on the
default partition's whole test split. Results go to the console, MLflow and, if asked, a
JSON file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mpmae.cluster.connect import connect
from mpmae.cluster.task_result import task_result
from mpmae.config import ConfigError
from mpmae.data.geobench.bands import BandMatch
from mpmae.data.geobench.dataset import GeoBenchDataset
from mpmae.data.geobench.errors import GeoBenchError
from mpmae.data.geobench.normalise import InputStats
from mpmae.data.geobench.partitions import DEFAULT_PARTITION
from mpmae.data.geobench.task_specs import TASK_SPECS_FILE, LabelKind
from mpmae.evaluate.command.encoders import Encoder, open_encoder
from mpmae.evaluate.command.inputs import size_note
from mpmae.evaluate.config import EvaluateConfig
from mpmae.evaluate.finetune.launch import finetune_cells
from mpmae.evaluate.protocols.ray_tasks import (
    embed_dataset,
    remote_options,
    score_cell,
    scoring_options,
)
from mpmae.evaluate.reports.results import table, to_json
from mpmae.evaluate.reports.tracking import (
    evaluation_run,
    link_pretraining_run,
    log_cell,
    log_png,
    log_results,
)
from mpmae.storage import resolve
from mpmae.track.runs import tracking_uri

TEST_SPLIT = "test"


def evaluate(encoder_spec: str, datasets: list[str], cfg: EvaluateConfig,
             progress=print) -> list[dict[str, Any]]:
    """Evaluate one encoder on every dataset; returns the result rows."""
    import ray

    encoder = configured_encoder(encoder_spec, cfg)
    # Every dataset is read and checked before any cluster or tracking work starts.
    plans = plan_datasets(encoder, open_datasets(datasets), cfg, progress)
    started_ray = connect(cfg.address)
    try:
        with evaluation_run(cfg, encoder, [p.dataset.name for p in plans]) as run_id:
            rows = encoder_rows(encoder, plans, cfg, run_id, progress)
            # The results first: a tracking problem below must not cost them.
            if cfg.results:
                resolve(cfg.results).write_bytes_atomic(to_json(rows).encode())
            progress(table(rows))
            log_results(rows)
            link_pretraining_run(encoder, run_id, rows)
    finally:
        if started_ray:
            ray.shutdown()
    return rows


def configured_encoder(spec: str, cfg: EvaluateConfig) -> Encoder:
    return open_encoder(spec, runs_root=cfg.storage.root, storage=cfg.storage.options(),
                        tracking_uri=tracking_uri(cfg.mlflow))


def open_datasets(paths: list[str]) -> list[tuple[GeoBenchDataset, bool]]:
    """Every dataset the arguments name, read and checked once: (dataset, whether it was
    named itself)."""
    return [(GeoBenchDataset.open(folder), named) for folder, named in dataset_folders(paths)]


def dataset_folders(paths: list[str]) -> list[tuple[Path, bool]]:
    """Each argument is a dataset folder, or a benchmark folder holding several:
    (folder, whether it was named itself)."""
    folders = []
    for path in map(Path, paths):
        if (path / TASK_SPECS_FILE).is_file():
            folders.append((path, True))
            continue
        found = sorted(p.parent for p in path.glob(f"*/{TASK_SPECS_FILE}"))
        if not found:
            raise GeoBenchError(f"{path} holds no GEO-Bench dataset (no {TASK_SPECS_FILE} in it or "
                                "its subfolders): give a dataset or benchmark folder")
        folders += [(f, False) for f in found]
    return folders


def plan_datasets(encoder: Encoder, datasets: list[tuple[GeoBenchDataset, bool]],
                  cfg: EvaluateConfig, progress) -> list[DatasetPlan]:
    plans = [plan for dataset, named in datasets
             if (plan := _plan(encoder, dataset, named, cfg, progress)) is not None]
    if not plans:
        raise ConfigError(f"nothing to evaluate in {', '.join(d.name for d, _ in datasets)} "
                          f"with protocol {cfg.protocol}", key="protocol")
    return plans


def encoder_rows(encoder: Encoder, plans: list[DatasetPlan], cfg: EvaluateConfig,
                 run_id: str, progress) -> list[dict[str, Any]]:
    """Score the encoder on every planned dataset (cells logged under ``run_id``)."""
    return [row for plan in plans
            for row in _evaluate_dataset(encoder, plan, cfg, run_id, progress)]


@dataclass(frozen=True)
class DatasetPlan:
    """One dataset, checked: its band match and statistics, the samples each partition
    trains on and the test split every one is scored on."""

    dataset: GeoBenchDataset
    match: BandMatch
    stats: InputStats
    trains: dict[str, tuple[str, ...]]
    test: tuple[str, ...]
    size_note: str
    stats_note: str


def _plan(encoder: Encoder, dataset: GeoBenchDataset, named: bool, cfg: EvaluateConfig,
          progress) -> DatasetPlan | None:
    """The checked plan; None for a dataset the protocol cannot score that was found in a
    benchmark folder (named itself, it is an error)."""
    if dataset.label_kind is LabelKind.SEGMENTATION and cfg.protocol == "knn":
        message = f"{dataset.name} is a segmentation dataset, which kNN does not score"
        if named:
            raise ConfigError(f"{message}: use --protocol linear (a frozen segmentation "
                              "head)", key="protocol")
        progress(f"skipping {message}")
        return None
    match = dataset.match_bands(encoder.input_bands)
    if match.filled:
        fills = ", ".join(f"{b} ← {s}" for b, s in match.filled.items())
        progress(f"{dataset.name}: bands missing from the dataset filled as MMEarth does: "
                 f"{fills}")
    stats, stats_note = _input_stats(dataset, match, encoder, cfg, progress)
    return DatasetPlan(dataset, match, stats,
                       {p: dataset.samples(p, "train") for p in cfg.partitions},
                       dataset.samples(DEFAULT_PARTITION, TEST_SPLIT),
                       size_note(dataset, encoder.module.patch_size), stats_note)


def _evaluate_dataset(encoder: Encoder, plan: DatasetPlan, cfg: EvaluateConfig, run_id: str,
                      progress) -> list[dict[str, Any]]:
    if cfg.protocol == "finetune":
        rows = _finetuned_rows(encoder, plan, cfg, progress)
    else:
        rows = _frozen_rows(encoder, plan, cfg, progress)
    for partition in cfg.partitions:
        log_cell(run_id, [r for r in rows if r["partition"] == partition])
    return rows


def _frozen_rows(encoder: Encoder, plan: DatasetPlan, cfg: EvaluateConfig,
                 progress) -> list[dict[str, Any]]:
    import ray

    dataset, test = plan.dataset, plan.test
    names = tuple(sorted(set(test).union(*plan.trains.values())))
    progress(f"{dataset.name}: embedding {len(names)} samples ({plan.size_note}) with "
             f"{encoder.name}")
    # The job reopens the folder by its absolute path: on a cluster it must be shared.
    embedded = ray.remote(embed_dataset).options(**remote_options()).remote(
        encoder.module, str(dataset.folder.resolve()), names, plan.match, plan.stats,
        cfg.embed_batch, stages=dataset.label_kind is LabelKind.SEGMENTATION)
    seeds = range(cfg.seeds) if cfg.protocol == "linear" else range(1)  # kNN: no training
    scorer = ray.remote(score_cell).options(**scoring_options())
    jobs = {(p, s): scorer.remote(embedded, plan.trains[p], test, dataset.label_kind.value,
                                  dataset.n_classes, s, cfg)
            for p in cfg.partitions for s in seeds}
    rows = []
    for (partition, seed), ref in jobs.items():
        result = task_result(ref)
        rows.append(result_row(encoder, plan, cfg, partition, seed, {
            "metric": result.metric, "value": result.value, "ci95": list(result.ci95)}))
    return rows


def _finetuned_rows(encoder: Encoder, plan: DatasetPlan, cfg: EvaluateConfig,
                    progress) -> list[dict[str, Any]]:
    rows = []
    for (partition, seed), fields in finetune_cells(encoder, plan.dataset, plan, cfg,
                                                    progress).items():
        if (figure := fields.pop("figure")) is not None:
            log_png(figure, f"{plan.dataset.name}-{partition}-seed{seed}-predictions.png")
        rows.append(result_row(encoder, plan, cfg, partition, seed, fields))
    return rows


def result_row(encoder: Encoder, plan: DatasetPlan, cfg: EvaluateConfig, partition: str,
               seed: int, scores: dict[str, Any]) -> dict[str, Any]:
    """One result row: what was scored, how, and ``scores`` (metric, value, ci95, …)."""
    return {"encoder": encoder.name, "dataset": plan.dataset.name, "protocol": cfg.protocol,
            "partition": partition, "seed": seed, **scores,
            "n_train": len(plan.trains[partition]), "n_test": len(plan.test),
            "bands_filled": dict(plan.match.filled), "input_size": plan.size_note,
            "normalisation": plan.stats_note}


def _input_stats(dataset: GeoBenchDataset, match: BandMatch, encoder: Encoder,
                 cfg: EvaluateConfig, progress) -> tuple[InputStats, str]:
    """The inputs' mean and std, and how they were chosen (recorded in every result row)."""
    if cfg.normalise == "dataset":
        if dataset.stats_scale == 1.0:
            return dataset.input_stats(match), "dataset band_stats.json"
        note = f"dataset band_stats.json x {dataset.stats_scale:g}"
        progress(f"{dataset.name}: normalised with {note}, as MMEarth's reference does")
        return dataset.input_stats(match), note
    level = (encoder.normalisation or {}).get("l1c")
    if not level:
        raise ConfigError(f"{encoder.name} carries no pretraining statistics: use "
                          "normalise=dataset", key="normalise")
    return (InputStats(np.asarray(level["mean"], np.float32),
                       np.asarray(level["std"], np.float32)), "encoder pretraining statistics")
