"""Means over seeds with Student-t 95 % intervals, and rankings of groups by their means."""

from __future__ import annotations

import math
import statistics

# Two-sided 95 % quantiles of Student's t by degrees of freedom; past 20 the normal's.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086)


def mean_ci95(values: list[float]) -> dict:
    """Mean, sample std and the t interval of the mean (None for one value)."""
    mean = statistics.mean(values)
    if len(values) < 2:
        return {"mean": mean, "std": None, "ci95": None, "n": len(values)}
    std = statistics.stdev(values)
    df = len(values) - 1
    half = (_T975[df - 1] if df <= len(_T975) else 1.96) * std / math.sqrt(len(values))
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "n": len(values)}


def paired_difference(a: list[float], b: list[float]) -> dict:
    """``a − b`` seed by seed (same seeds, same order), with its interval."""
    return mean_ci95([x - y for x, y in zip(a, b, strict=True)])


def ranking(values: dict[str, list[float]]) -> list[str]:
    """Group names, highest mean first."""
    return sorted(values, key=lambda name: statistics.mean(values[name]), reverse=True)


def rounded(summary: dict, digits: int = 4) -> dict:
    out = dict(summary)
    for key in ("mean", "std"):
        if out[key] is not None:
            out[key] = round(out[key], digits)
    if out["ci95"] is not None:
        out["ci95"] = [round(x, digits) for x in out["ci95"]]
    return out
