"""Scoring a fine-tuned model's predictions with the frozen protocols' metrics (same
counts, same bootstrap intervals): each dataset by its own metric (GEO-Bench-2's
multi-label sets by macro F1, v1's by micro F1)."""

from __future__ import annotations

import torch
from torch import Tensor

from mpmae.evaluate.protocols.metrics import LABEL_COUNTS, Score, iou_counts, score

SEGMENTATION_METRIC = "miou"


def counts_of(metric: str, logits: list[Tensor], labels: list[Tensor],
              n_classes: int) -> Tensor:
    """Per-sample counts of ``metric`` for batches of logits and labels (on any device) →
    CPU (N, K)."""
    parts = []
    for out, y in zip(logits, labels, strict=True):
        if metric == SEGMENTATION_METRIC:
            parts.append(iou_counts(out, y, n_classes))
        else:
            parts.append(LABEL_COUNTS[metric](out, y))
    return torch.cat(parts).cpu()


def metric_score(metric: str, counts: Tensor, seed: int) -> Score:
    return score(metric, counts, seed=seed)
