"""The MP-MAE decoder: 1×1 projection, a learned mask token in hidden cells, ConvNeXt blocks.

It works on the full patch grid (one cell per patch, 7×7 for the presets), so it is dense.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mpmae.model.blocks import Block
from mpmae.model.convnextv2 import init_weights


class Decoder(nn.Module):
    """Encoder last stage (B, C, gh, gw) + hidden mask → decoded grid (B, gh, gw, dim)."""

    def __init__(self, in_dim: int, dim: int = 512, depth: int = 1) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(dim))
        self.blocks = nn.ModuleList(Block(dim) for _ in range(depth))
        self.apply(init_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, features: Tensor, hidden: Tensor) -> Tensor:
        x = self.proj(features.permute(0, 2, 3, 1))
        x = torch.where(hidden[..., None], self.mask_token.to(x.dtype), x)
        for block in self.blocks:
            x = block(x)
        return x
