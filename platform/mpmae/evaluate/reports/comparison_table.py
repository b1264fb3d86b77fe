"""The comparison of several encoders: per (protocol, partition) a table with the encoders as
rows and the datasets as columns, each cell the mean over seeds ± the seeds' std and the
mean 95 % interval, the best encoder of each column marked, and GEO-Bench's normalised
score (mean over the datasets its ``normalizer.json`` names) as an extra column. As text
for the console, CSV, and a bar figure with the intervals. A section is one protocol, so
recipes never share a column (``linear``, MMEarth's, and ``logistic``, a converged fit, score
the same features differently); its title names the recipes its rows carry."""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass
from typing import Any

from mpmae.evaluate.reports.normalised_score import Bounds
from mpmae.evaluate.reports.result_row import ResultRow
from mpmae.evaluate.reports.results import LOWER_IS_BETTER, Cell, CellKey, cells, interval_text
from mpmae.track.figures import figure_png

NORMALISED = "GEO-Bench normalised"
BEST = "*"


@dataclass(frozen=True)
class Entry:
    mean: float
    seed_std: float
    ci95: tuple[float, float]
    best: bool = False


@dataclass(frozen=True)
class Section:
    """One (protocol, partition): ``entries[encoder][column]``; columns are the datasets,
    then NORMALISED when a dataset has bounds; ``recipes``: those its rows carry (one per
    label kind: a segmentation set's ``linear`` is a frozen head)."""

    protocol: str
    partition: str
    recipes: tuple[str, ...]
    columns: list[str]
    metrics: dict[str, str]  # dataset → its metric
    entries: dict[str, dict[str, Entry]]
    normalised_over: tuple[str, ...]  # the datasets the normalised column averages


def comparison(rows: list[ResultRow], bounds: dict[str, Bounds]) -> list[Section]:
    """The sections, encoders in the order they were evaluated."""
    encoders = list(dict.fromkeys(r.encoder for r in rows))
    heads = list(dict.fromkeys((r.protocol, r.partition) for r in rows))
    summary = cells(rows)
    return [_section(protocol, partition, encoders, summary,
                     [r for r in rows if (r.protocol, r.partition) == (protocol, partition)],
                     bounds)
            for protocol, partition in heads]


def _section(protocol: str, partition: str, encoders: list[str],
             summary: dict[CellKey, Cell], rows: list[ResultRow],
             bounds: dict[str, Bounds]) -> Section:
    datasets = sorted({r.dataset for r in rows})
    over = tuple(d for d in datasets if d in bounds)
    entries: dict[str, dict[str, Entry]] = {}
    for encoder in encoders:
        keys = {d: CellKey(encoder, protocol, partition, d) for d in datasets}
        found = {d: summary[key] for d, key in keys.items() if key in summary}
        entries[encoder] = {d: Entry(c.mean, c.seed_std, c.ci95) for d, c in found.items()}
        if over and set(over) <= set(found):
            entries[encoder][NORMALISED] = _normalised(
                [r for r in rows if r.encoder == encoder], found, over, bounds)
    columns = datasets + ([NORMALISED] if over else [])
    metrics = {r.dataset: r.metric for r in rows}
    recipes = tuple(dict.fromkeys(r.recipe for r in rows if r.recipe))
    return Section(protocol, partition, recipes, columns, metrics,
                   _mark_best(entries, columns, metrics), over)


def _normalised(rows: list[ResultRow], found: dict[str, Cell], over: tuple[str, ...],
                bounds: dict[str, Bounds]) -> Entry:
    """The mean over ``over`` of each dataset's normalised score; its seed std is that of
    the per-seed means (the normalisation is affine, so intervals map through it)."""
    by_seed: dict[int, list[float]] = {}
    for row in rows:
        if row.dataset in over:
            score = bounds[row.dataset].normalise(row.value)
            by_seed.setdefault(row.seed, []).append(score)
    per_seed = [statistics.mean(v) for v in by_seed.values() if len(v) == len(over)]
    mean = statistics.mean(bounds[d].normalise(found[d].mean) for d in over)
    low, high = (statistics.mean(bounds[d].normalise(found[d].ci95[i]) for d in over)
                 for i in (0, 1))
    return Entry(mean, statistics.stdev(per_seed) if len(per_seed) > 1 else 0.0, (low, high))


def _mark_best(entries: dict[str, dict[str, Entry]], columns: list[str],
               metrics: dict[str, str]) -> dict[str, dict[str, Entry]]:
    """Every entry whose mean is its column's best (highest; lowest for an error metric)
    gets ``best``."""
    marked = {encoder: dict(row) for encoder, row in entries.items()}
    for column in columns:
        sign = -1 if metrics.get(column) in LOWER_IS_BETTER else 1
        best = max(sign * row[column].mean for row in entries.values() if column in row)
        for encoder, row in entries.items():
            if column in row and sign * row[column].mean >= best:
                old = row[column]
                marked[encoder][column] = Entry(old.mean, old.seed_std, old.ci95, best=True)
    return marked


def comparison_text(sections: list[Section]) -> str:
    """The console table: % mean ± seed std [mean 95 % CI], ``*`` the best per column."""
    return "\n\n".join(_block(s) for s in sections) + "\n" + _legend(sections)


def _block(section: Section) -> str:
    grid = [[_title(section)] + [f"{c} " for c in section.columns]]
    grid += [[encoder] + [_cell(row[c], section.metrics.get(c, "")) if c in row else "— "
                          for c in section.columns]
             for encoder, row in section.entries.items()]
    widths = [max(len(line[i]) for line in grid) for i in range(len(grid[0]))]
    return "\n".join(line[0].ljust(widths[0]) + "".join(
        f"  {text:>{width}}" for text, width in zip(line[1:], widths[1:], strict=True))
        for line in grid)


def _title(section: Section) -> str:
    recipes = f" ({', '.join(section.recipes)})" if section.recipes else ""
    return f"{section.protocol} / {section.partition}{recipes}"


def _cell(entry: Entry, metric: str) -> str:
    """``metric``: the column's ("" for the normalised one, a fraction like the scores)."""
    return (interval_text(metric, entry.mean, entry.seed_std, entry.ci95)
            + (BEST if entry.best else " "))


def _legend(sections: list[Section]) -> str:
    metrics = sorted({f"{d} {m}" for s in sections for d, m in s.metrics.items()})
    legend = (f"(metric: {', '.join(metrics)}; % mean over seeds ± seed std [mean 95 % CI]; "
              f"{BEST} best in its column")
    over = sorted({d for s in sections for d in s.normalised_over})
    if over:
        legend += (f"; {NORMALISED}: (score - low) / (high - low) with normalizer.json's "
                   f"bounds, x100, mean over {', '.join(over)}")
    return legend + ")"


def comparison_csv(sections: list[Section]) -> str:
    """One line per (protocol, partition, encoder); per column its mean, seed std, interval
    and whether it is the best (fractions, not %)."""
    columns = list(dict.fromkeys(c for s in sections for c in s.columns))
    fields = ["protocol", "partition", "recipe", "encoder"] + [
        f"{c} {part}" if part else c for c in columns
        for part in ("", "seed_std", "ci95_low", "ci95_high", "best")]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    for section in sections:
        for encoder, row in section.entries.items():
            line: dict[str, Any] = {"protocol": section.protocol,
                                    "partition": section.partition,
                                    "recipe": " ".join(section.recipes), "encoder": encoder}
            for column, entry in row.items():
                line |= {column: entry.mean, f"{column} seed_std": entry.seed_std,
                         f"{column} ci95_low": entry.ci95[0],
                         f"{column} ci95_high": entry.ci95[1], f"{column} best": entry.best}
            writer.writerow(line)
    return out.getvalue()


def comparison_figure(sections: list[Section]) -> bytes:
    """PNG: per section, a group of bars per dataset, one bar per encoder with its mean
    95 % interval. The normalised score is left out: it is not on the metrics' 0–1 scale."""
    from matplotlib.figure import Figure

    encoders = list(dict.fromkeys(e for s in sections for e in s.entries))
    width = 0.8 / len(encoders)
    n_datasets = max(len(s.metrics) for s in sections)
    fig = Figure(figsize=(max(5.0, 1.2 * n_datasets * len(encoders) ** 0.5 + 2),
                          3.2 * len(sections)))
    for k, section in enumerate(sections):
        ax = fig.add_subplot(len(sections), 1, k + 1)
        datasets = [c for c in section.columns if c != NORMALISED]
        for i, encoder in enumerate(encoders):
            row = section.entries.get(encoder, {})
            shown = [j for j, d in enumerate(datasets) if d in row]
            bars = [row[datasets[j]] for j in shown]
            errors = [[max(0.0, b.mean - b.ci95[0]) for b in bars],
                      [max(0.0, b.ci95[1] - b.mean) for b in bars]]
            ax.bar([j - 0.4 + (i + 0.5) * width for j in shown], [b.mean for b in bars],
                   width, yerr=errors, capsize=3, color=f"C{i}", label=encoder)
        ax.set_xticks(range(len(datasets)),
                      [f"{d}\n{section.metrics[d]}" for d in datasets], fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"{_title(section)}: mean over seeds, 95 % interval",
                     fontsize="medium")
        ax.legend(fontsize="small")
        ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return figure_png(fig)
