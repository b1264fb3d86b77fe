"""Per-task losses, NaN-safe, on hidden patches only for pixel tasks.

Every loss returns ``(value, count)``: the mean over the valid elements and how many there
were. A task with nothing valid in the batch gives exactly 0 with its graph intact (a sum
of zeros divided by 1), never NaN. Invalid targets are replaced *before* the arithmetic,
so no NaN reaches the backward pass either.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mpmae.modalities import IGNORE_INDEX, MODALITIES, TaskKind
from mpmae.model.choices import MissingTargets
from mpmae.model.patches import patchify

# Targets normalised per patch (mean and variance over the patch's pixels and bands).
PATCH_NORMALISED_TASKS = ("sentinel2",)
PATCH_NORM_EPS = 1e-6


def patch_statistics(patches: Tensor) -> tuple[Tensor, Tensor]:
    """NaN-ignoring mean and unbiased variance over the last axis of (B, L, N) patches."""
    valid = torch.isfinite(patches)
    count = valid.sum(-1, keepdim=True)
    values = torch.where(valid, patches, 0.0)
    mean = values.sum(-1, keepdim=True) / count.clamp(min=1)
    squares = torch.where(valid, (patches - mean) ** 2, 0.0)
    var = squares.sum(-1, keepdim=True) / (count - 1).clamp(min=1)
    return mean, var


def normalise_patches(patches: Tensor) -> Tensor:
    """Per-patch normalised target, ``(x − mean) / sqrt(var + 1e-6)``; NaN stays NaN."""
    mean, var = patch_statistics(patches)
    return (patches - mean) / torch.sqrt(var + PATCH_NORM_EPS)


def denormalise_patches(pred: Tensor, target_patches: Tensor) -> Tensor:
    """Undo ``normalise_patches`` on a prediction, with the target patch's statistics."""
    mean, var = patch_statistics(target_patches)
    return pred * torch.sqrt(var + PATCH_NORM_EPS) + mean


def mse(pred: Tensor, target: Tensor, where: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Mean squared error over finite targets (and ``where``, broadcast, if given)."""
    valid = torch.isfinite(target)
    if where is not None:
        valid = valid & where
    target = torch.where(valid, target, 0.0)
    squares = torch.where(valid, (pred - target) ** 2, 0.0)
    count = valid.sum()
    return squares.sum() / count.clamp(min=1), count


def cross_entropy(
    logits: Tensor, target: Tensor, where: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Cross-entropy over targets ≠ IGNORE_INDEX (and ``where``); logits' classes last."""
    if where is not None:
        target = torch.where(where, target, IGNORE_INDEX)
    per_item = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        target.reshape(-1).long(),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    )
    count = (target != IGNORE_INDEX).sum()
    return per_item.sum() / count.clamp(min=1), count


def task_loss(
    task: str, pred: Tensor, target: Tensor, hidden: Tensor, patch_size: int,
    missing_targets: MissingTargets = "ignore",
) -> tuple[Tensor, Tensor]:
    """The loss of one task.

    ``pred`` is the head output: (B, L, p·p·C) for pixel tasks, (B, C) for image tasks.
    ``target`` follows the normalised batch contract (see ``mpmae.modalities``).
    ``hidden`` (B, L) bool: pixel losses count hidden patches only.
    ``missing_targets``: what a missing pixel-regression target (NaN/inf after z-scoring)
    counts as. ``ignore`` leaves it out of the loss; ``zero`` regresses it to z = 0, the band
    mean, as MMEarth-train does (its nan_to_num on S2, S1, ASTER and canopy height runs
    before the loss, so its NaN masks never fire). Image-level targets and classes are
    ignored either way, as in the reference.
    """
    kind = MODALITIES[task].kind
    if kind is TaskKind.PIXEL_REGRESSION:
        if missing_targets == "zero":
            # Before the per-patch statistics, as in the reference: zeros count there too.
            target = torch.nan_to_num(target, nan=0.0, posinf=0.0, neginf=0.0)
        target = patchify(target, patch_size)
        if task in PATCH_NORMALISED_TASKS:
            target = normalise_patches(target)
        return mse(pred.float(), target, hidden[..., None])
    if kind is TaskKind.PIXEL_CLASSES:
        logits = pred.reshape(*pred.shape[:2], patch_size * patch_size, -1)
        return cross_entropy(logits, patchify(target, patch_size), hidden[..., None])
    if kind is TaskKind.IMAGE_REGRESSION:
        return mse(pred.float(), target)
    return cross_entropy(pred, target)
