"""The learning-rate schedule of every training here: linear warm-up, then cosine decay.

Pretraining (the paper's schedule), fine-tuning and the linear head all use it; the last
two have no warm-up. The lr is a function of the optimizer step alone, so a resumed run
needs nothing but its step to continue it.

timm's ``CosineLRScheduler`` (warmup_prefix, t_in_epochs=False) gives the same cosine, but
its warm-up starts at ``warmup_lr_init`` and reaches the peak one step later: step ``s``
of the warm-up trains at ``s / warmup`` of the peak, the paper's at ``(s + 1) / warmup``
(measured on warm-up 3 of 10 steps: timm 0, 5e-5, 1e-4, 1.5e-4, ours 5e-5, 1e-4, 1.5e-4,
1.5e-4). So the paper's schedule is kept here rather than taken from timm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class WarmupCosine:
    """From ``peak × (s + 1) / warmup_steps`` during the warm-up, then cosine from ``peak``
    to ``floor`` over the remaining steps of ``total_steps``; ``floor`` after them."""

    peak: float
    floor: float
    warmup_steps: int
    total_steps: int

    def lr(self, step: int) -> float:
        """The learning rate of optimizer ``step`` (0-based)."""
        if self.warmup_steps > 0 and step < self.warmup_steps:
            return self.peak * (step + 1) / self.warmup_steps
        decay = max(self.total_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / decay, 1.0)
        return self.floor + (self.peak - self.floor) * 0.5 * (1 + math.cos(math.pi * progress))

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> None:
        """Set every group's lr for ``step``, scaled by the group's ``lr_scale`` (layer decay)."""
        lr = self.lr(step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
