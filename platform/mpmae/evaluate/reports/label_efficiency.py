"""Label-efficiency curves: each dataset's score against the fraction of its training
labels the head saw (GEO-Bench's ``0.01x_train`` … ``1.00x_train`` partitions), for an
evaluation that covers more than one of them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mpmae.data.geobench.partitions import DEFAULT_PARTITION
from mpmae.evaluate.reports.result_row import ResultRow
from mpmae.evaluate.reports.results import cells
from mpmae.track.figures import figure_png

FRACTION_PARTITION = re.compile(r"(\d+(?:\.\d+)?)x_train")


def train_fraction(partition: str) -> float | None:
    """The share of the training labels a partition holds: ``0.10x_train`` → 0.1, the
    ``default`` partition (the whole train split) → 1.0; None for any other name."""
    if partition == DEFAULT_PARTITION:
        return 1.0
    found = FRACTION_PARTITION.fullmatch(partition)
    return float(found.group(1)) if found else None


@dataclass(frozen=True)
class Point:
    fraction: float
    partition: str
    metric: str
    mean: float  # over seeds
    ci95: tuple[float, float]  # the seeds' mean bootstrap interval


def curves(rows: list[ResultRow]) -> dict[tuple[str, str, str], list[Point]]:
    """(encoder, protocol, dataset) → its points by fraction, for every dataset scored at
    two fractions or more (one fraction makes no curve)."""
    found: dict[tuple[str, str, str], list[Point]] = {}
    for key, cell in cells(rows).items():
        fraction = train_fraction(key.partition)
        if fraction is not None:
            found.setdefault((key.encoder, key.protocol, key.dataset), []).append(
                Point(fraction, key.partition, cell.metric, cell.mean, cell.ci95))
    return {key: sorted(points, key=lambda p: (p.fraction, p.partition))
            for key, points in sorted(found.items())
            if len({p.fraction for p in points}) >= 2}


def curves_figure(found: dict[tuple[str, str, str], list[Point]]) -> bytes:
    """PNG: metric against the fraction of training labels (log axis), one line per curve
    with its 95 % interval as a band (Agg, no pyplot state). Lines are labelled by what
    differs between them (the dataset for one encoder, the encoder for one dataset); the
    title names what they share."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    varying = [i for i in range(3) if len({key[i] for key in found}) > 1] or [2]
    shared = [i for i in range(3) if i not in varying]
    fig = Figure(figsize=(5.2, 3.6))
    ax = fig.add_subplot()
    for i, (key, points) in enumerate(found.items()):
        x = [p.fraction for p in points]
        label = " / ".join(key[j] for j in varying)
        ax.plot(x, [p.mean for p in points], marker="o", color=f"C{i}", label=label)
        ax.fill_between(x, [p.ci95[0] for p in points], [p.ci95[1] for p in points],
                        color=f"C{i}", alpha=0.2, linewidth=0)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g} %"))
    ax.set_xlabel("training labels used")
    ax.set_ylabel(" / ".join(sorted({p.metric for ps in found.values() for p in ps})))
    ax.set_ylim(0, 1)
    head = " / ".join(next(iter(found))[j] for j in shared)
    ax.set_title(f"{head + ', ' if head else ''}bands: 95 % interval", fontsize="medium")
    ax.legend(fontsize="small")
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    return figure_png(fig)
