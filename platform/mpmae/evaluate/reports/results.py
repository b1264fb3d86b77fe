"""Evaluation results: one row per (encoder, dataset, protocol, partition, seed), as
JSON, CSV, a console table like the paper's (datasets as columns) and a bar figure."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, fields
from typing import NamedTuple

from mpmae.evaluate.reports.result_row import ResultRow

FIELDS = tuple(f.name for f in fields(ResultRow))  # the CSV's columns
# Error metrics (in the target's units): smaller is better, shown as they are, not as %.
LOWER_IS_BETTER = frozenset({"rmse"})


def shown(metric: str, value: float) -> str:
    """A value as the tables show it: a score in [0, 1] as %, an error metric as it is."""
    return f"{value:.3f}" if metric in LOWER_IS_BETTER else f"{100 * value:.1f}"


def interval_text(metric: str, mean: float, seed_std: float, ci95: tuple[float, float]) -> str:
    """``mean ±seed std [95 % CI]`` as the tables show it."""
    low, high = ci95
    return (f"{shown(metric, mean)} ±{shown(metric, seed_std)} "
            f"[{shown(metric, low)}, {shown(metric, high)}]")


class CellKey(NamedTuple):
    encoder: str
    protocol: str
    partition: str
    dataset: str


@dataclass(frozen=True)
class Cell:
    """One (encoder, protocol, partition, dataset) over its seeds."""

    metric: str
    mean: float
    seed_std: float
    ci95: tuple[float, float]  # the seeds' mean interval
    seeds: int


def to_json(rows: list[ResultRow]) -> str:
    return json.dumps({"results": [row.to_dict() for row in rows]}, indent=2) + "\n"


def to_csv(rows: list[ResultRow]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, dict | list) or v is None else v
                         for k, v in row.to_dict().items()})
    return out.getvalue()


def cells(rows: list[ResultRow]) -> dict[CellKey, Cell]:
    """Each (encoder, protocol, partition, dataset): the mean over seeds of the value and
    of the interval's bounds."""
    grouped: dict[CellKey, list[ResultRow]] = defaultdict(list)
    for row in rows:
        grouped[CellKey(row.encoder, row.protocol, row.partition, row.dataset)].append(row)
    out = {}
    for key, group in grouped.items():
        values = [r.value for r in group]
        low, high = (statistics.mean(r.ci95[i] for r in group) for i in (0, 1))
        out[key] = Cell(group[0].metric, statistics.mean(values),
                        statistics.stdev(values) if len(values) > 1 else 0.0, (low, high),
                        len(group))
    return out


def table(rows: list[ResultRow]) -> str:
    """Datasets as columns; a row per (encoder, protocol, partition); cells are the mean
    over seeds in percent, ± the seeds' standard deviation, then the mean 95 % interval."""
    summary = cells(rows)
    datasets = sorted({k.dataset for k in summary})
    lines = ["encoder / protocol / partition".ljust(40)
             + "".join(f"{d:>26}" for d in datasets)]
    for head in sorted({(k.encoder, k.protocol, k.partition) for k in summary}):
        line = " / ".join(head).ljust(40)
        for dataset in datasets:
            cell = summary.get(CellKey(*head, dataset))
            line += f"{_cell(cell):>26}" if cell else f"{'—':>26}"
        lines.append(line)
    metrics = sorted({c.metric for c in summary.values()})
    recipes = sorted({f"{r.protocol}: {r.recipe}" for r in rows if r.recipe})
    lines.append(f"(metric: {', '.join(metrics)}; % mean over seeds ± seed std [95 % CI]"
                 + ("; RMSE as it is, lower is better" if LOWER_IS_BETTER & set(metrics) else "")
                 + (f"; recipe {', '.join(recipes)}" if recipes else "") + ")")
    return "\n".join(lines)


def _cell(cell: Cell) -> str:
    return interval_text(cell.metric, cell.mean, cell.seed_std, cell.ci95)


def bar_figure(rows: list[ResultRow]) -> bytes:
    """PNG: one bar per (dataset, partition) with its mean interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = cells(rows)
    keys = sorted(summary, key=lambda k: (k.dataset, k.partition, k.protocol))
    labels = [f"{k.dataset}\n{k.protocol} {k.partition}" for k in keys]
    means = [summary[k].mean for k in keys]
    errors = [[m - summary[k].ci95[0] for k, m in zip(keys, means, strict=True)],
              [summary[k].ci95[1] - m for k, m in zip(keys, means, strict=True)]]
    fig, ax = plt.subplots(figsize=(max(4, 1.4 * len(keys)), 3.5))
    ax.bar(range(len(keys)), means, yerr=errors, capsize=4)
    ax.set_xticks(range(len(keys)), labels, fontsize=7)
    ax.set_ylabel(" / ".join(sorted({summary[k].metric for k in keys})))
    ax.set_ylim(0, 1)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()
