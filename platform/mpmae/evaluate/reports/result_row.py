"""One evaluation result: an (encoder, dataset, protocol, partition, seed) and its score,
typed; and the row users' files hold for it (results.json, results.csv, MLflow artifacts),
whose keys and their order stay as they always were, the recipe's after them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ResultRow:
    encoder: str
    dataset: str
    protocol: str
    partition: str
    seed: int
    metric: str
    value: float
    ci95: tuple[float, float]  # the bootstrap interval of the test score
    n_train: int
    n_test: int
    bands_filled: dict[str, str]  # input band ← the band MMEarth fills it from
    input_size: str
    normalisation: str
    # protocol finetune only (None otherwise): the best validation epoch (None when no
    # epoch was validated), the per-class IoU of a segmentation set (None for
    # classification), the epochs trained and where the cell's checkpoints live
    best_val: dict[str, Any] | None = None
    per_class_iou: tuple[float | None, ...] | None = None
    epochs: int | None = None
    resumed_from_epoch: int | None = None
    workers: int | None = None
    cell: str | None = None
    # which recipe made the score (protocols/recipes.py: ``mmearth-linear`` and
    # ``lbfgs-logistic`` score the same features differently), and what it settled on or
    # decided by: the steps it took, the L2 and iterations of the logistic fit, how kNN
    # votes (None: a fine-tuned cell, whose fields above say it)
    recipe: str = ""
    details: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON holds it: a fine-tuned cell's fields (those of its result file)
        after the score, and none of them for a frozen protocol; the recipe last."""
        row: dict[str, Any] = {
            "encoder": self.encoder, "dataset": self.dataset, "protocol": self.protocol,
            "partition": self.partition, "seed": self.seed, "metric": self.metric,
            "value": self.value, "ci95": list(self.ci95)}
        if self.cell is not None:
            row |= {"best_val": self.best_val, "epochs": self.epochs,
                    "resumed_from_epoch": self.resumed_from_epoch, "workers": self.workers}
            if self.per_class_iou is not None:
                row["per_class_iou"] = list(self.per_class_iou)
            row["cell"] = self.cell
        row |= {"n_train": self.n_train, "n_test": self.n_test,
                "bands_filled": dict(self.bands_filled), "input_size": self.input_size,
                "normalisation": self.normalisation, "recipe": self.recipe}
        return row | ({"details": dict(self.details)} if self.details is not None else {})
