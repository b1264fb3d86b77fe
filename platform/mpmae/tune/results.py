"""The sweep's results as a table (one row per trial, CSV) and a figure of probe accuracy
by pretext set and loss weighting."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from mpmae.evaluate.reports.results import LOWER_IS_BETTER
from mpmae.track.figures import figure_png
from mpmae.tune.search_space import PARAM_KEYS, pretext_label

COLUMNS = ("trial_id", "pretext", "loss_weighting", "lr", "mask_ratio", "seed", "status",
           "step", "probe_accuracy", "objective", "objective_value", "loss/sentinel2",
           "mlflow_run_id")


def trial_row(config: dict[str, Any], metrics: dict[str, Any], status: str,
              mlflow_run_id: str, objective: str, score: float | None) -> dict[str, Any]:
    """One table row from a trial's drawn values, its last reported metrics and its
    score on the sweep's ``objective`` (None: not scored)."""
    row = {key: config.get(key) for key in PARAM_KEYS}
    row["pretext"] = pretext_label(row["pretext"])
    row.update(trial_id=metrics.get("trial_id", ""), status=status,
               step=metrics.get("step", 0), probe_accuracy=metrics.get("probe_accuracy"),
               objective=objective, objective_value=score, mlflow_run_id=mlflow_run_id)
    row["loss/sentinel2"] = metrics.get("loss/sentinel2")
    return {key: row[key] for key in COLUMNS}


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def probe_figure(rows: list[dict[str, Any]]) -> bytes:
    """PNG: every trial's last probe accuracy as a dot, x = pretext set, colour = loss
    weighting, trials stopped early hollow (Agg, no pyplot state)."""
    from matplotlib.figure import Figure

    scored = [r for r in rows if _finite(r["probe_accuracy"])]
    sets = sorted({r["pretext"] for r in scored}) or ["(no trial reported)"]
    weightings = sorted({r["loss_weighting"] for r in scored})
    fig = Figure(figsize=(1.2 + 1.1 * len(sets), 3.6))
    ax = fig.add_subplot()
    for i, weighting in enumerate(weightings):
        offset = (i - (len(weightings) - 1) / 2) * 0.18
        for done in (True, False):
            picked = [r for r in scored if r["loss_weighting"] == weighting
                      and (r["status"] == "completed") == done]
            ax.scatter([sets.index(r["pretext"]) + offset for r in picked],
                       [r["probe_accuracy"] for r in picked], color=f"C{i}",
                       facecolors=None if done else "none",
                       label=weighting if done else f"{weighting} (stopped early)")
    ax.set_xticks(range(len(sets)), sets, rotation=20)
    ax.set_ylabel("linear probe accuracy")
    ax.set_title("probe accuracy by pretext set")
    if scored:
        ax.legend(fontsize="small")
    fig.tight_layout()
    return figure_png(fig)


def best_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The completed trial (its encoder exists) with the best objective value: the
    highest, or the lowest for an error metric (the objective's name ends in its metric,
    e.g. ``downstream/biomassters/linear/default/rmse``)."""
    done = [r for r in rows if r["status"] == "completed" and _finite(r["objective_value"])]
    if not done:
        return None
    lower = done[0]["objective"].rsplit("/", 1)[-1] in LOWER_IS_BETTER
    return (min if lower else max)(done, key=lambda r: r["objective_value"])


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
