"""Combining per-task losses into one: uncertainty weighting or a plain sum."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


class UncertaintyWeighting(nn.Module):
    """Kendall et al.: total = Σ exp(−sᵢ)·Lᵢ + sᵢ, one learnable log-variance sᵢ per task.

    A task with no valid target in the batch is left out entirely (its sᵢ term too, else sᵢ
    would drift down on batches that say nothing about the task); it is multiplied by zero
    rather than skipped so every sᵢ keeps a gradient (DDP needs all parameters used).
    """

    def __init__(self, tasks: tuple[str, ...]) -> None:
        super().__init__()
        self.log_vars = nn.ParameterDict({t: nn.Parameter(torch.zeros(())) for t in tasks})

    def forward(
        self, losses: dict[str, Tensor], counts: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        total = 0.0
        weights = {}
        for task, loss in losses.items():
            s = self.log_vars[task]
            present = (counts[task] > 0).to(loss.dtype)
            total = total + present * (torch.exp(-s) * loss + s)
            weights[task] = torch.exp(-s.detach())
        return total, weights


class UnweightedSum(nn.Module):
    """total = Σ Lᵢ; every weight is 1."""

    def forward(
        self, losses: dict[str, Tensor], counts: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        total = sum(losses.values())
        weights = {task: torch.ones((), device=loss.device) for task, loss in losses.items()}
        return total, weights


# The registry of loss weightings, keyed by the config's choices (choices.WEIGHTING_NAMES).
WEIGHTINGS: dict[str, Callable[[tuple[str, ...]], nn.Module]] = {
    "uncertainty": UncertaintyWeighting,
    "unweighted": lambda tasks: UnweightedSum(),
}


def build_weighting(name: str, tasks: tuple[str, ...]) -> nn.Module:
    """One of :data:`WEIGHTINGS` for the pretext tasks ``tasks``."""
    if name not in WEIGHTINGS:
        raise ValueError(f"unknown loss weighting {name!r}; choose from {list(WEIGHTINGS)}")
    return WEIGHTINGS[name](tasks)
