"""Downstream metrics with bootstrap 95 % intervals over test samples.

Every metric is computed from per-sample counts that add up over any set of samples
(correct predictions; true/false positives and false negatives; per-class intersections
and unions), so a bootstrap resample is a weighted sum of those counts: one matrix product
for all resamples instead of a loop that recomputes the metric.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

BOOTSTRAP_RESAMPLES = 1000


@dataclass(frozen=True)
class Score:
    """A metric's value on the whole test split and its bootstrap 95 % interval."""

    metric: str
    value: float
    ci95: tuple[float, float]


def accuracy_counts(logits: Tensor, target: Tensor) -> Tensor:
    """(N, 1): 1 where the arg-max class is the target."""
    return (logits.argmax(1) == target).float().unsqueeze(1)


def f1_micro_counts(logits: Tensor, target: Tensor) -> Tensor:
    """(N, 3): true positives, false positives, false negatives per sample; a label is
    predicted where its logit is above 0 (probability 0.5)."""
    predicted, actual = logits > 0, target > 0.5
    return torch.stack([(predicted & actual).sum(1), (predicted & ~actual).sum(1),
                        (~predicted & actual).sum(1)], 1).float()


def f1_macro_counts(logits: Tensor, target: Tensor) -> Tensor:
    """(N, 3K): per label, its true positives, then its false positives, then its false
    negatives in this sample (a label is predicted where its logit is above 0)."""
    predicted, actual = logits > 0, target > 0.5
    return torch.cat([predicted & actual, predicted & ~actual, ~predicted & actual], 1).float()


def iou_counts(logits: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """(N, 2K): per class, the pixels in both prediction and target, then in either."""
    predicted = logits.argmax(1).flatten(1)
    actual = target.flatten(1)
    classes = torch.arange(num_classes, device=logits.device).view(1, -1, 1)
    p, a = predicted.unsqueeze(1) == classes, actual.unsqueeze(1) == classes
    return torch.cat([(p & a).sum(2), (p | a).sum(2)], 1).float()


def _accuracy(total: Tensor) -> Tensor:
    return total[..., 0]


def _f1_micro(total: Tensor) -> Tensor:
    tp, fp, fn = total[..., 0], total[..., 1], total[..., 2]
    return 2 * tp / (2 * tp + fp + fn).clamp_min(1)


def _f1_macro(total: Tensor) -> Tensor:
    """Macro F1 over all K labels, as torchmetrics' ``MultilabelF1Score(average="macro")``
    (GEO-Bench-2's ``Multilabel_F1_Score``): a label neither predicted nor present scores
    0 and still counts in the mean."""
    k = total.shape[-1] // 3
    tp, fp, fn = total[..., :k], total[..., k:2 * k], total[..., 2 * k:]
    denominator = 2 * tp + fp + fn
    f1 = torch.where(denominator > 0, 2 * tp / denominator.clamp_min(1), torch.zeros_like(tp))
    return f1.mean(-1)


def squared_error_counts(outputs: Tensor, target: Tensor) -> Tensor:
    """Per sample: the sum of squared errors over its pixels and their count (N, 2), of
    one-channel (N, 1, H, W) ``outputs`` against (N, H, W) float ``target``."""
    errors = (outputs[:, 0].double() - target.double()).square().flatten(1)
    return torch.stack([errors.sum(1), torch.full_like(errors[:, 0], errors.shape[1])], 1)


def _rmse(total: Tensor) -> Tensor:
    """Root mean squared error over every pixel of the samples (lower is better)."""
    return (total[..., 0] / total[..., 1].clamp_min(1)).sqrt()


def _miou(total: Tensor) -> Tensor:
    """Macro Jaccard over the classes that occur (in prediction or target)."""
    k = total.shape[-1] // 2
    inter, union = total[..., :k], total[..., k:]
    present = union > 0
    iou = torch.where(present, inter / union.clamp_min(1), torch.zeros_like(inter))
    return iou.sum(-1) / present.sum(-1).clamp_min(1)


# metric name → the reducer of summed counts (accuracy reduces means, not sums).
REDUCERS: dict[str, Callable[[Tensor], Tensor]] = {
    "accuracy": _accuracy, "f1_micro": _f1_micro, "f1_macro": _f1_macro, "miou": _miou,
    "rmse": _rmse,
}
# metric name → the per-sample counts of a scene label's logits (segmentation: iou_counts).
LABEL_COUNTS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "accuracy": accuracy_counts, "f1_micro": f1_micro_counts, "f1_macro": f1_macro_counts,
}


def score(metric: str, counts: Tensor, resamples: int = BOOTSTRAP_RESAMPLES,
          seed: int = 0) -> Score:
    """The metric on all samples and the 2.5/97.5 percentiles over bootstrap resamples."""
    reduce = REDUCERS[metric]
    counts = counts.double().cpu()
    n = counts.shape[0]
    scale = 1.0 / n if metric == "accuracy" else 1.0
    value = float(reduce(counts.sum(0) * scale))
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(n, (resamples, n), generator=generator)
    weights = torch.zeros(resamples, n, dtype=torch.float64)
    weights.scatter_add_(1, picks, torch.ones_like(picks, dtype=torch.float64))
    boot = reduce((weights @ counts) * scale)
    low, high = torch.quantile(boot, torch.tensor([0.025, 0.975], dtype=torch.float64))
    return Score(metric, value, (float(low), float(high)))
