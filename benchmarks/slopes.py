"""How a cost grows with the work: the slope of a least-squares line through
(log work, log cost), and a log-log figure of the curves.

A slope of 1 is a cost proportional to the work, 0 a fixed one; above ``FASTER`` the cost
grows faster than the work, which at a million tiles turns a minute into hours.
"""

from __future__ import annotations

import math

FASTER = 1.1


def slope(points: list[tuple[float, float]]) -> float | None:
    """The log-log slope through (work, cost) points with both positive; None for fewer
    than two distinct works."""
    pts = [(math.log(w), math.log(c)) for w, c in points if w > 0 and c is not None and c > 0]
    if len({x for x, _ in pts}) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    num = sum((x - mx) * (y - my) for x, y in pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    return round(num / den, 3)


def verdict(value: float | None) -> str:
    if value is None:
        return "too few points"
    return "grows faster than the work" if value > FASTER else "ok"


def figure(curves: dict[str, dict[str, list[tuple[float, float]]]], path: str) -> str | None:
    """One log-log panel per sweep (``curves``: sweep → cost name → points); the path
    written, or None where matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(curves), figsize=(7 * len(curves), 5), squeeze=False)
    for ax, (sweep, costs) in zip(axes[0], curves.items(), strict=True):
        for name, points in costs.items():
            pts = sorted((w, c) for w, c in points if w > 0 and c is not None and c > 0)
            if len(pts) >= 2:
                ax.loglog(*zip(*pts, strict=True), marker="o",
                          label=f"{name} (slope {slope(pts)})")
        ax.set_xlabel(sweep)
        ax.set_ylabel("cost (units in the legend)")
        ax.grid(True, which="both", alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
