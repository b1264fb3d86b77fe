"""``mpmae evaluate ENC_A ENC_B … DATASET…``: several encoders on the same datasets.

Each dataset is read and checked once; each encoder is then planned on it (bands matched,
statistics chosen) before any cluster work, and evaluated as ``mpmae evaluate`` does for
one (an embedding job per dataset, a job per partition and seed) inside a parent MLflow
run that ends with the comparison table: encoders as rows, datasets as columns, the best
per column marked, GEO-Bench's normalised score where a ``normalizer.json`` gives bounds;
then, with GEO-Bench-2 datasets, its leaderboard's capability table and submission file.
"""

from __future__ import annotations

from collections.abc import Callable

from mpmae.cluster.connect import connect
from mpmae.evaluate.command.plan import open_datasets, plan_all
from mpmae.evaluate.command.run import (
    configured_encoder,
    encoder_rows,
    report_geobench2,
    save_results,
)
from mpmae.evaluate.config import EvaluateConfig
from mpmae.evaluate.reports.comparison_table import comparison, comparison_text
from mpmae.evaluate.reports.comparison_tracking import comparison_run, log_comparison
from mpmae.evaluate.reports.normalised_score import benchmark_bounds
from mpmae.evaluate.reports.result_row import ResultRow
from mpmae.evaluate.reports.tracking import evaluation_run, link_pretraining_run, log_results


def compare(encoder_specs: list[str], datasets: list[str], cfg: EvaluateConfig,
            progress: Callable[[str], None] = print) -> list[ResultRow]:
    """Evaluate every encoder on every dataset; returns all their result rows."""
    import ray

    encoders = [configured_encoder(spec, cfg) for spec in encoder_specs]
    opened = open_datasets(datasets)
    plans = plan_all(encoders, opened, cfg, progress)
    bounds = benchmark_bounds(dataset.folder for dataset, _ in opened)
    names = [p.dataset.name for p in plans[encoders[0].name]]
    started_ray = connect(cfg.address)
    rows: list[ResultRow] = []
    try:
        with comparison_run(cfg, encoders, names):
            for encoder in encoders:
                with evaluation_run(cfg, encoder, names, nested=True) as run_id:
                    found = encoder_rows(encoder, plans[encoder.name], cfg, run_id, progress)
                    rows += found
                    # The results so far first: a tracking problem must not cost them.
                    save_results(rows, cfg)
                    log_results(found)
                    link_pretraining_run(encoder, run_id, found)
            sections = comparison(rows, bounds)
            progress(comparison_text(sections))
            log_comparison(rows, sections)
            report_geobench2(rows, plans[encoders[0].name], cfg, progress)
    finally:
        if started_ray:
            ray.shutdown()
    return rows
