"""``mpmae evaluate ENCODER DATASET …``: a frozen encoder scored on GEO-Bench datasets.

For each dataset: bands matched by name (MMEarth's fill announced and recorded), inputs
normalised and brought to a multiple of the patch size, every needed sample embedded once
(one Ray job), then one Ray job per (partition, seed) trains and scores the protocol on the
default partition's whole test split. Results go to the console, MLflow and, if asked, a
JSON file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mpmae.cluster.connect import connect
from mpmae.cluster.task_result import task_result
from mpmae.data.geobench.task_specs import LabelKind
from mpmae.evaluate.command.encoders import Encoder, open_encoder
from mpmae.evaluate.command.geobench2_source import GeoBench2Source
from mpmae.evaluate.command.plan import DatasetPlan, open_datasets, plan_datasets
from mpmae.evaluate.config import EvaluateConfig
from mpmae.evaluate.finetune.launch import finetune_cells
from mpmae.evaluate.protocols.ray_tasks import (
    embed_dataset,
    remote_options,
    score_cell,
    scoring_options,
)
from mpmae.evaluate.protocols.recipes import recipe_name
from mpmae.evaluate.reports.geobench2_report import geobench2_report, publish
from mpmae.evaluate.reports.result_row import ResultRow
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

Progress = Callable[[str], None]


def evaluate(encoder_spec: str, datasets: list[str], cfg: EvaluateConfig,
             progress: Progress = print) -> list[ResultRow]:
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
            save_results(rows, cfg)
            progress(table(rows))
            log_results(rows)
            report_geobench2(rows, plans, cfg, progress)
            link_pretraining_run(encoder, run_id, rows)
    finally:
        if started_ray:
            ray.shutdown()
    return rows


def save_results(rows: list[ResultRow], cfg: EvaluateConfig) -> None:
    """Write the rows to ``cfg.results`` (if set) in the configured store, atomically."""
    if cfg.results:
        resolve(cfg.results, cfg.storage.options()).write_bytes_atomic(to_json(rows).encode())


def report_geobench2(rows: list[ResultRow], plans: list[DatasetPlan], cfg: EvaluateConfig,
                     progress: Progress) -> None:
    """GEO-Bench-2's capability table and submission file for its datasets' rows, if any
    (printed, beside ``cfg.results``, on the active MLflow run)."""
    names = {p.dataset.name for p in plans if isinstance(p.dataset, GeoBench2Source)}
    if names:
        publish(geobench2_report(rows, names, cfg), cfg, progress)


def configured_encoder(spec: str, cfg: EvaluateConfig) -> Encoder:
    return open_encoder(spec, runs_root=cfg.storage.root, storage=cfg.storage.options(),
                        tracking_uri=tracking_uri(cfg.mlflow))


def encoder_rows(encoder: Encoder, plans: list[DatasetPlan], cfg: EvaluateConfig,
                 run_id: str, progress: Progress) -> list[ResultRow]:
    """Score the encoder on every planned dataset (cells logged under ``run_id``)."""
    return [row for plan in plans
            for row in _evaluate_dataset(encoder, plan, cfg, run_id, progress)]


PIXEL_LABELS = (LabelKind.SEGMENTATION, LabelKind.REGRESSION)  # heads on stage maps


def _evaluate_dataset(encoder: Encoder, plan: DatasetPlan, cfg: EvaluateConfig, run_id: str,
                      progress: Progress) -> list[ResultRow]:
    if cfg.protocol == "finetune":
        rows = _finetuned_rows(encoder, plan, cfg, progress)
    else:
        rows = _frozen_rows(encoder, plan, cfg, progress)
    for partition in plan.trains:  # a GEO-Bench-2 dataset: default only
        log_cell(run_id, [r for r in rows if r.partition == partition])
    return rows


def _frozen_rows(encoder: Encoder, plan: DatasetPlan, cfg: EvaluateConfig,
                 progress: Progress) -> list[ResultRow]:
    import ray

    dataset, test = plan.dataset, plan.test
    names = tuple(sorted(set(test).union(*plan.trains.values(), *plan.valids.values())))
    progress(f"{dataset.name}: embedding {len(names)} samples ({plan.size_note}) with "
             f"{encoder.name}")
    # The job reopens the folder by its absolute path: on a cluster it must be shared.
    embedded = ray.remote(embed_dataset).options(**remote_options()).remote(
        encoder.module, str(dataset.folder.resolve()), names, plan.match, plan.stats,
        cfg.embed_batch, stages=dataset.label_kind in PIXEL_LABELS)
    # kNN has no training and the logistic fit no randomness: one seed says it all.
    seeds = range(cfg.seeds) if cfg.protocol == "linear" else range(1)
    scorer = ray.remote(score_cell).options(**scoring_options())
    jobs = {(p, s): scorer.remote(embedded, plan.trains[p], test, dataset.label_kind.value,
                                  dataset.n_classes, s, cfg, plan.valids.get(p, ()),
                                  plan.metric)
            for p in plan.trains for s in seeds}
    rows = []
    for (partition, seed), ref in jobs.items():
        result = task_result(ref)
        rows.append(result_row(encoder, plan, cfg, partition, seed, {
            "metric": result.score.metric, "value": result.score.value,
            "ci95": tuple(result.score.ci95), "details": result.details}))
    return rows


def _finetuned_rows(encoder: Encoder, plan: DatasetPlan, cfg: EvaluateConfig,
                    progress: Progress) -> list[ResultRow]:
    rows = []
    for (partition, seed), fields in finetune_cells(encoder, plan.dataset, plan, cfg,
                                                    progress).items():
        if (figure := fields.pop("figure")) is not None:
            log_png(figure, f"{plan.dataset.name}-{partition}-seed{seed}-predictions.png")
        rows.append(result_row(encoder, plan, cfg, partition, seed, fields))
    return rows


def result_row(encoder: Encoder, plan: DatasetPlan, cfg: EvaluateConfig, partition: str,
               seed: int, scores: dict[str, Any]) -> ResultRow:
    """One result row: what was scored, how (the recipe), and ``scores`` (metric, value,
    ci95, …)."""
    return ResultRow(encoder=encoder.name, dataset=plan.dataset.name, protocol=cfg.protocol,
                     partition=partition, seed=seed, n_train=len(plan.trains[partition]),
                     n_test=len(plan.test), bands_filled=dict(plan.match.filled),
                     input_size=plan.size_note, normalisation=plan.stats_note,
                     recipe=recipe_name(cfg.protocol, plan.dataset.label_kind.value), **scores)


