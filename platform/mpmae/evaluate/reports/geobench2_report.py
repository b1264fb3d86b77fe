"""GEO-Bench-2's leaderboard numbers for an evaluation's result rows: the capability table
(``geobench2_leaderboard.aggregate``) and the submission file, printed after the result
table, written beside ``--results`` and logged to the active MLflow run.

What a seed is, per protocol:

- ``knn`` and ``logistic`` have no randomness (a fixed vote; an L-BFGS fit in float64 from
  zero on one thread): a seed would change only the bootstrap interval's resampling, not
  the score. They run once, and that score stands for each of the leaderboard's
  ``REQUIRED_SEEDS`` seeds (the table says so).
- ``linear`` (MMEarth's head, or the segmentation head) trains a fresh head per seed
  (initialisation, batch order): ``--seeds`` runs, each one the leaderboard's seed.
  Fewer or more than ``REQUIRED_SEEDS`` is aggregated all the same, labelled a demo, and
  the submission file is written but not submittable (the table lists why).
- ``finetune`` (every layer trained, a U-Net on segmentation sets) is seeded as
  ``linear`` is, and its rows are ``full_ft`` in the submission file, as the
  leaderboard's reference submissions are; the others are ``frozen``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from dataclasses import dataclass

from mpmae.data.geobench2.catalog import REQUIRED_SEEDS
from mpmae.evaluate.config import EvaluateConfig
from mpmae.evaluate.reports.geobench2_leaderboard import (
    SUBMISSION_FILE,
    LeaderboardTable,
    RunParams,
    SeedScore,
    aggregate,
    submission_csv,
    submission_problems,
)
from mpmae.evaluate.reports.result_row import ResultRow
from mpmae.evaluate.reports.tracking import RESULTS_DIR
from mpmae.storage import resolve

TABLE_FILE = "geobench2_leaderboard.md"
DETERMINISTIC = ("knn", "logistic")  # protocols whose score no seed changes
PIXEL_HEADS = ("frozen-segmentation-head", "frozen-regression-head")  # cfg.segmentation's
# Our metric → the leaderboard's (f1_micro is not Multilabel_F1_Score: refused there).
LEADERBOARD_METRIC = {"accuracy": "Overall_Accuracy", "f1_macro": "Multilabel_F1_Score",
                      "miou": "Multiclass_Jaccard_Index", "rmse": "RMSE"}


@dataclass(frozen=True)
class Report:
    table: LeaderboardTable
    text: str  # the capability table file: notes, dataset rows, group rows
    csv: str  # results_and_parameters.csv
    problems: tuple[str, ...]  # why the leaderboard would refuse the file (empty: none)


def geobench2_report(rows: list[ResultRow], datasets: Collection[str],
                     cfg: EvaluateConfig) -> Report:
    """The leaderboard's numbers for the rows of GEO-Bench-2 ``datasets``."""
    mine = [r for r in rows if r.dataset in datasets]
    scores = [s for r in mine for s in _seed_scores(r)]
    params = {(r.encoder, r.dataset): _params(r, cfg) for r in mine}
    seeds = len({s.seed for s in scores})
    table = aggregate(scores, required_seeds=seeds)
    problems = tuple(submission_problems(scores, params))
    return Report(table, _text(table, mine, seeds, problems), submission_csv(scores, params),
                  problems)


def publish(report: Report, cfg: EvaluateConfig, progress: Callable[[str], None]) -> None:
    """Print the capability table, write both files beside ``cfg.results`` (when set) and
    log them to the active MLflow run's ``results/``."""
    import mlflow

    progress(report.text)
    if cfg.results:
        folder = resolve(os.path.dirname(cfg.results) or ".", cfg.storage.options())
        folder.join(TABLE_FILE).write_bytes_atomic(report.text.encode())
        folder.join(SUBMISSION_FILE).write_bytes_atomic(report.csv.encode())
        progress(f"wrote {folder.join(TABLE_FILE).uri} and {folder.join(SUBMISSION_FILE).uri}")
    mlflow.log_text(report.text, f"{RESULTS_DIR}/{TABLE_FILE}")
    mlflow.log_text(report.csv, f"{RESULTS_DIR}/{SUBMISSION_FILE}")


def _seed_scores(row: ResultRow) -> list[SeedScore]:
    metric = LEADERBOARD_METRIC.get(row.metric, row.metric)
    seeds = range(REQUIRED_SEEDS) if row.protocol in DETERMINISTIC else [row.seed]
    return [SeedScore(row.encoder, row.dataset, s, metric, row.value) for s in seeds]


def _params(row: ResultRow, cfg: EvaluateConfig) -> RunParams:
    """How the row's score was made, in the submission file's columns; the decoder is the
    recipe (``knn-similarity-vote``, ``lbfgs-logistic``, ``mmearth-linear``,
    ``frozen-segmentation-head``, ``frozen-regression-head``, ``mmearth-finetune``,
    ``mmearth-unet-finetune``)."""
    details = row.details or {}
    if row.protocol == "finetune":
        ft = cfg.unet if "unet" in row.recipe else cfg.finetune
        # A train split smaller than the batch trains in one batch of it, at the lr the
        # configured batch sets (finetune/loop.py).
        return RunParams(row.recipe, "full_ft", batch_size=min(ft.batch_size, row.n_train),
                         weight_decay=ft.weight_decay, lr=ft.blr * ft.batch_size / 256)
    if row.protocol == "logistic":  # its L2 is chosen on the validation split: the trials
        return RunParams(row.recipe, "frozen", n_trials=cfg.logistic.l2_steps,
                         weight_decay=details.get("l2"))
    if row.protocol == "linear" and row.recipe in PIXEL_HEADS:
        seg = cfg.segmentation
        return RunParams(row.recipe, "frozen", batch_size=details.get("batch"),
                         weight_decay=seg.weight_decay, lr=seg.lr)
    if row.protocol == "linear":
        lin = cfg.linear
        return RunParams(row.recipe, "frozen", batch_size=details.get("batch"),
                         weight_decay=lin.weight_decay, lr=lin.blr * lin.batch_size / 256)
    return RunParams(row.recipe, "frozen")


def _text(table: LeaderboardTable, rows: list[ResultRow], seeds: int,
          problems: tuple[str, ...]) -> str:
    protocols = sorted({r.protocol for r in rows})
    lines = ["GEO-Bench-2 leaderboard numbers (normalised against its reference bounds; "
             "score and error are the mean and standard error of 100 bootstrap IQMs, ×100)"]
    if deterministic := [p for p in protocols if p in DETERMINISTIC]:
        lines.append(f"- {', '.join(deterministic)}: no randomness, scored once; that score "
                     f"stands for each of the leaderboard's {REQUIRED_SEEDS} seeds")
    if seeds != REQUIRED_SEEDS:
        lines.append(f"- DEMO: {seeds} seed(s) per dataset, the leaderboard takes exactly "
                     f"{REQUIRED_SEEDS} (--seeds {REQUIRED_SEEDS})")
    lines += [f"- not submittable: {p}" for p in problems]
    lines += ["", "| encoder | dataset | metric | mean | IQM (normalised) |",
              "|---|---|---|---|---|"]
    lines += [f"| {d.encoder} | {d.dataset} | {d.metric} | {100 * d.mean:.1f} | "
              f"{100 * d.iqm:.1f} |" for d in table.datasets]
    # Only the groups these datasets are in: the others would say "missing" for every one.
    present = {d.dataset for d in table.datasets}
    groups = LeaderboardTable(table.datasets, tuple(g for g in table.groups
                                                    if present & set(g.datasets)))
    return "\n".join([*lines, "", groups.markdown()]) + "\n"
