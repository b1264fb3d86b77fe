"""Scoring a fine-tuned model's predictions with the frozen protocols' metrics (same
counts, same bootstrap intervals)."""

from __future__ import annotations

import torch
from torch import Tensor

from mpmae.evaluate.protocols.frozen import METRICS
from mpmae.evaluate.protocols.metrics import (
    Score,
    accuracy_counts,
    f1_micro_counts,
    iou_counts,
    score,
)


def counts_of(kind: str, logits: list[Tensor], labels: list[Tensor], n_classes: int) -> Tensor:
    """Per-sample counts of batches of logits and labels (on any device) → CPU (N, K)."""
    parts = []
    for out, y in zip(logits, labels, strict=True):
        if kind == "segmentation":
            parts.append(iou_counts(out, y, n_classes))
        elif kind == "multi_label":
            parts.append(f1_micro_counts(out, y))
        else:
            parts.append(accuracy_counts(out, y))
    return torch.cat(parts).cpu()


def metric_score(kind: str, counts: Tensor, seed: int) -> Score:
    return score(METRICS[kind], counts, seed=seed)
