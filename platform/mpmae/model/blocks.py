"""ConvNeXt V2 building blocks, each with two forwards that compute the same function.

``forward(x, visible)`` is the plain dense path on channels-last maps (B, H, W, C). With a
``visible`` mask (B, H, W, 1) it is the dense-masked reference: hidden cells are re-zeroed
after every spatial op and before GRN, so they never reach a visible cell. With
``visible=None`` it is an ordinary ConvNeXt V2.

``forward_packed(tokens, layout)`` is the sparse path on packed visible tokens
(B, K, r, r, C) (see ``packing.py``). Point-wise work only touches visible cells.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mpmae.model.packing import PackedLayout, patch_conv

NORM_EPS = 1e-6


def layer_norm(dim: int) -> nn.LayerNorm:
    """LayerNorm over the last (channel) axis, ConvNeXt's eps."""
    return nn.LayerNorm(dim, eps=NORM_EPS)


def conv_nhwc(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """Apply a conv to a channels-last map; the permuted view runs as a channels_last conv."""
    return conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch for a random subset of samples."""

    def __init__(self, prob: float) -> None:
        super().__init__()
        self.prob = prob

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.prob == 0.0:
            return x
        keep = 1.0 - self.prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        return x * x.new_empty(shape).bernoulli_(keep).div_(keep)


class GRN(nn.Module):
    """Global response normalisation. Statistics per sample over the given spatial dims."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor, spatial_dims: tuple[int, ...]) -> Tensor:
        # Hidden cells must be zero here: they then add nothing to the L2 norm.
        gx = torch.linalg.vector_norm(x, dim=spatial_dims, keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + self.eps)
        # x + γ·(x·Nx) + β folded into one pass over x: β + x·(1 + γ·Nx).
        return torch.addcmul(self.bias, x, 1.0 + self.weight * nx)


class GRNMlp(nn.Module):
    """Linear → GELU → GRN → Linear, channels last."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.grn = GRN(hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(
        self, x: Tensor, spatial_dims: tuple[int, ...], visible: Tensor | None = None
    ) -> Tensor:
        x = self.act(self.fc1(x))
        if visible is not None:
            x = x * visible  # GRN statistics over visible cells only
        return self.fc2(self.grn(x, spatial_dims))


class Block(nn.Module):
    """ConvNeXt V2 block: depthwise 7×7 → LN → GRN-MLP, plus the residual."""

    def __init__(self, dim: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = layer_norm(dim)
        self.mlp = GRNMlp(dim, 4 * dim)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, visible: Tensor | None = None) -> Tensor:
        y = conv_nhwc(self.conv_dw, x)
        if visible is not None:
            y = y * visible
        y = x + self.drop_path(self.mlp(self.norm(y), (1, 2), visible))
        return y if visible is None else y * visible

    def forward_packed(self, tokens: Tensor, layout: PackedLayout) -> Tensor:
        # The only dense op: the 7×7 conv on a zero-filled grid, then back to the tokens.
        y = layout.gather(conv_nhwc(self.conv_dw, layout.scatter(tokens)), tokens.shape[2])
        return tokens + self.drop_path(self.mlp(self.norm(y), (1, 2, 3)))


class Downsample(nn.Module):
    """LN → conv with kernel = stride = 2: halves the cells per patch side."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm = layer_norm(in_dim)
        self.conv = nn.Conv2d(in_dim, out_dim, kernel_size=2, stride=2)

    def forward(self, x: Tensor, visible: Tensor | None = None) -> Tensor:
        y = conv_nhwc(self.conv, self.norm(x))
        return y if visible is None else y * visible

    def forward_packed(self, tokens: Tensor) -> Tensor:
        return patch_conv(self.norm(tokens), self.conv.weight, self.conv.bias)


class Stage(nn.Module):
    """An optional downsampling, then one block per drop-path rate, at one resolution."""

    def __init__(self, in_dim: int, dim: int, drop_paths: list[float], downsample: bool) -> None:
        super().__init__()
        self.downsample = Downsample(in_dim, dim) if downsample else None
        self.blocks = nn.ModuleList(Block(dim, p) for p in drop_paths)

    def forward(self, x: Tensor, visible: Tensor | None = None) -> Tensor:
        if self.downsample is not None:
            x = self.downsample(x, visible)
        for block in self.blocks:
            x = block(x, visible)
        return x

    def forward_packed(self, tokens: Tensor, layout: PackedLayout) -> Tensor:
        if self.downsample is not None:
            tokens = self.downsample.forward_packed(tokens)
        for block in self.blocks:
            tokens = block.forward_packed(tokens, layout)
        return tokens
