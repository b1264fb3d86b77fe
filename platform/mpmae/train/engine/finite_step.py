"""An optimizer step that never applies a non-finite loss or gradient, on every rank alike.

Pretraining and fine-tuning both step through here: one rank's NaN would otherwise reach
every rank's weights through the all-reduced gradient, and then every later checkpoint.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mpmae.errors import MpmaeError


class NonFiniteError(MpmaeError, RuntimeError):
    """Too many steps had a non-finite loss or gradient; the checkpoints are all finite."""


def finite_step(params: list[Tensor], optimizer: torch.optim.Optimizer,
                finite_loss: Tensor) -> Tensor | None:
    """Step unless ``finite_loss`` (a bool tensor) is false or the gradient norm is not
    finite on any rank; the gradients are cleared either way. Returns the gradient norm of
    a step taken, None for a step skipped (every rank gets the same answer)."""
    norm = torch.nn.utils.clip_grad_norm_(params, float("inf"))
    ok = (finite_loss & torch.isfinite(norm)).to(torch.int32)
    if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
        torch.distributed.all_reduce(ok, op=torch.distributed.ReduceOp.MIN)
    stepped = bool(ok)
    if stepped:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return norm if stepped else None
