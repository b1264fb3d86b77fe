"""How many optimizer steps a pretraining run takes, per epoch and in all."""

from __future__ import annotations

import math

from mpmae.config import ConfigError


def plan_steps(tiles: int, batch_size: int, accumulation: int, num_workers: int,
               epochs: float, max_steps: int | None) -> tuple[int, int]:
    """(optimizer steps per epoch, total optimizer steps) for a split of ``tiles`` tiles.

    Every worker gets an equal share of the split and drops its last partial batch.
    """
    micro_batches = tiles // num_workers // batch_size
    per_epoch = micro_batches // accumulation
    if per_epoch < 1:
        raise ConfigError(
            f"{tiles} tiles cannot fill one optimizer step of {num_workers} worker(s) × "
            f"batch {batch_size} × accumulation {accumulation}: use a smaller "
            "train.batch_size / train.accumulation or more data", key="train.batch_size"
        )
    total = max(1, math.ceil(epochs * per_epoch))
    return per_epoch, min(total, max_steps) if max_steps else total
