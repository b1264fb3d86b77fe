"""MLflow for a comparison of encoders: one parent run holding the comparison (table as CSV
and text, a bar figure with intervals, per dataset the label-efficiency curves with a line
per encoder, every result row), and under it each encoder's evaluation run as
``mpmae evaluate`` makes it for one encoder, its (dataset, protocol, partition) runs
nested one level further."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from mpmae.config import flatten, run_stamp
from mpmae.evaluate.command.encoders import Encoder
from mpmae.evaluate.config import EvaluateConfig
from mpmae.evaluate.reports.comparison_table import (
    Section,
    comparison_csv,
    comparison_figure,
    comparison_text,
)
from mpmae.evaluate.reports.label_efficiency import curves, curves_figure
from mpmae.evaluate.reports.result_row import ResultRow
from mpmae.evaluate.reports.results import to_json
from mpmae.evaluate.reports.tracking import (
    RESULTS_DIR,
    ending_active_run,
    evaluation_experiment,
    log_pngs,
)

COMPARISON_FIGURE = "comparison.png"


@contextmanager
def comparison_run(cfg: EvaluateConfig, encoders: list[Encoder],
                   datasets: list[str]) -> Iterator[str]:
    """The comparison's parent run (active while the block runs); yields its id."""
    import mlflow

    names = [e.name for e in encoders]
    run = mlflow.start_run(experiment_id=evaluation_experiment(cfg),
                           run_name=f"compare-{len(names)}-encoders-{run_stamp()}",
                           tags={"mpmae.encoders": ",".join(names),
                                 "mpmae.datasets": ",".join(datasets)})
    with ending_active_run():
        mlflow.log_params(flatten(cfg))
        yield run.info.run_id


def label_efficiency_figure_name(dataset: str) -> str:
    return f"label_efficiency_{re.sub(r'[^A-Za-z0-9_.-]+', '-', dataset)}.png"


def log_comparison(rows: list[ResultRow], sections: list[Section]) -> None:
    """On the active comparison run: every row (results.json), the table (comparison.csv,
    comparison.txt), its figure and, per dataset scored at two fractions or more of its
    labels, the label-efficiency curves with a line per encoder."""
    import mlflow

    mlflow.log_text(to_json(rows), f"{RESULTS_DIR}/results.json")
    mlflow.log_text(comparison_csv(sections), f"{RESULTS_DIR}/comparison.csv")
    mlflow.log_text(comparison_text(sections), f"{RESULTS_DIR}/comparison.txt")
    figures = {COMPARISON_FIGURE: comparison_figure(sections)}
    found = curves(rows)
    order = list(dict.fromkeys(r.encoder for r in rows))  # colours as in the bar figure
    for dataset in sorted({key[2] for key in found}):
        figures[label_efficiency_figure_name(dataset)] = curves_figure(
            {key: found[key] for key in sorted(found, key=lambda k: order.index(k[0]))
             if key[2] == dataset})
    log_pngs(figures)
