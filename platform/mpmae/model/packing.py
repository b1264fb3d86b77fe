"""The packed representation of visible cells, and the few ops that cross it.

At a stage with ``r`` cells per patch side, the K visible patches of a sample are stored
as tokens ``(B, K, r, r, C)`` — channels last, static shape. Point-wise work runs on them
directly. Only the depthwise 7×7 conv needs neighbours, so it alone scatters the tokens
into a zero-filled dense grid and gathers the result back; the kernel-2/stride-2
downsampling (and the stem's patch/8 conv) never crosses a patch border and works on the
tokens as a matmul.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mpmae.model.masking import PatchMask


class PackedLayout:
    """Maps packed tokens to dense grid cells; indices are built once per forward and size."""

    def __init__(self, mask: PatchMask) -> None:
        self.mask = mask
        self._index: dict[int, Tensor] = {}

    def grid_shape(self, r: int) -> tuple[int, int]:
        gh, gw = self.mask.grid
        return gh * r, gw * r

    def row_index(self, r: int) -> Tensor:
        """(B·K·r,) index of each token row segment in the dense grid viewed as (B·H·gw, r·C).

        Indexing whole patch-row segments (r·C contiguous values) rather than single cells
        moves r times fewer, r times longer pieces of memory.
        """
        if r not in self._index:
            keep = self.mask.keep
            batch = keep.shape[0]
            height = self.mask.grid[0] * r
            gw = self.mask.grid[1]
            rows = (keep // gw)[..., None] * r + torch.arange(r, device=keep.device)
            sample = torch.arange(batch, device=keep.device)[:, None, None]
            self._index[r] = ((sample * height + rows) * gw + (keep % gw)[..., None]).reshape(-1)
        return self._index[r]

    def scatter(self, tokens: Tensor) -> Tensor:
        """Tokens (B, K, r, r, C) → dense (B, H, W, C), zero at hidden cells."""
        batch, _, r, _, channels = tokens.shape
        height, width = self.grid_shape(r)
        segments = tokens.reshape(-1, r * channels)
        dense = segments.new_zeros(batch * height * self.mask.grid[1], r * channels)
        dense = dense.index_copy(0, self.row_index(r), segments)
        return dense.view(batch, height, width, channels)

    def gather(self, dense: Tensor, r: int) -> Tensor:
        """Dense (B, H, W, C) → tokens (B, K, r, r, C) at the visible cells."""
        batch, _, _, channels = dense.shape
        segments = dense.reshape(-1, r * channels).index_select(0, self.row_index(r))
        return segments.view(batch, self.mask.num_keep, r, r, channels)


def patch_windows(x: Tensor, mask: PatchMask, patch: int, halo: int = 0) -> Tensor:
    """The visible patches of an image (B, C, H, W) as (B·K, C, p + 2·halo, p + 2·halo).

    ``halo`` extra pixels on each side come from the neighbouring patches (zero padding at
    the image border), so a valid k×k conv with k = 2·halo + 1 on a window equals the dense
    'same' conv at the patch's pixels.
    """
    size = patch + 2 * halo
    if halo:
        x = F.pad(x, (halo, halo, halo, halo))
    windows = x.unfold(2, size, patch).unfold(3, size, patch).permute(0, 2, 3, 1, 4, 5)
    gw = mask.grid[1]
    sample = torch.arange(x.shape[0], device=x.device)[:, None]
    picked = windows[sample, mask.keep // gw, mask.keep % gw]
    return picked.reshape(-1, x.shape[1], size, size)


def patch_conv(tokens: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """A conv with kernel = stride = f on tokens (B, K, r, r, C) → (B, K, r/f, r/f, C_out).

    Since f divides r, every kernel window lies inside one patch: a matmul over the
    flattened f×f×C window, with the conv weight reordered to match.
    """
    batch, k, r, _, channels = tokens.shape
    out_channels, _, f, _ = weight.shape
    q = r // f
    windows = tokens.view(batch, k, q, f, q, f, channels).transpose(3, 4)
    windows = windows.reshape(batch, k, q, q, f * f * channels)
    return F.linear(windows, weight.permute(0, 2, 3, 1).reshape(out_channels, -1), bias)


def patch_depthwise_conv(tokens: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """A depthwise conv with kernel = stride = f on tokens (B, K, r, r, C) → (B, K, r/f, r/f, C)."""
    batch, k, r, _, channels = tokens.shape
    f = weight.shape[-1]
    q = r // f
    taps = weight.view(channels, f, f).permute(1, 2, 0).reshape(f, 1, f, channels)
    out = (tokens.view(batch, k, q, f, q, f, channels) * taps).sum(dim=(3, 5))
    return out if bias is None else out + bias
