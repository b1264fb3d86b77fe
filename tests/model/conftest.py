"""Small helpers for the model tests: batches that follow the normalised batch contract."""

from __future__ import annotations

import pytest
import torch

from mpmae.modalities import MODALITIES, PretextSet, TaskKind


def contract_batch(pretext: PretextSet, batch: int, size: int, seed: int = 0) -> dict:
    """Random inputs and targets of the right dtype and shape for every task of ``pretext``."""
    g = torch.Generator().manual_seed(seed)
    out = {"image": torch.randn(batch, pretext.in_chans, size, size, generator=g)}
    for task in pretext.tasks:
        kind, c = MODALITIES[task].kind, pretext.output_channels(task)
        if kind is TaskKind.PIXEL_REGRESSION:
            out[task] = torch.randn(batch, c, size, size, generator=g)
        elif kind is TaskKind.PIXEL_CLASSES:
            out[task] = torch.randint(-1, c, (batch, size, size), generator=g)
        elif kind is TaskKind.IMAGE_REGRESSION:
            out[task] = torch.randn(batch, c, generator=g)
        else:
            out[task] = torch.randint(0, c, (batch,), generator=g)
    return out


def randomise_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial norm and GRN parameters (GRN starts as the identity, LN as 1/0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 1:
                p.copy_(
                    torch.randn(p.shape, generator=g) * 0.5 + (1.0 if "weight" in name else 0.0)
                )
    return module


@pytest.fixture
def make_batch():
    return contract_batch


@pytest.fixture
def randomise():
    return randomise_
