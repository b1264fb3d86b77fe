"""Encoder stems: pixels → stage-0 cells, 8 cells per patch side whatever the patch size.

Both stems have total stride f = patch/8, so after the three 2× downsamplings one final
cell is one patch. Like the blocks, each has a dense ``forward`` (NCHW image in,
channels-last map out; masked when ``visible`` masks are given) and a ``forward_packed``
that only computes the visible patches.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from mpmae.model.blocks import conv_nhwc, layer_norm
from mpmae.model.masking import PatchMask
from mpmae.model.packing import patch_depthwise_conv, patch_windows

STAGE0_CELLS_PER_PATCH = 8


class MMEarthStem(nn.Module):
    """The MMEarth stem: 3×3 conv (stride 1) → LN → GELU → depthwise conv f×f/f → LN.

    The 3×3 conv is the only op in the encoder that reads across patch borders at pixel
    level, so hidden pixels are zeroed first: a visible pixel next to a hidden patch sees
    zeros there, exactly as at the image border.
    """

    def __init__(self, in_chans: int, dim: int, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        stride = patch_size // STAGE0_CELLS_PER_PATCH
        self.conv = nn.Conv2d(in_chans, dim, kernel_size=3, padding=1)
        self.norm_in = layer_norm(dim)
        self.act = nn.GELU()
        self.conv_dw = nn.Conv2d(dim, dim, kernel_size=stride, stride=stride, groups=dim)
        self.norm = layer_norm(dim)

    def forward(
        self, x: Tensor, visible_pixels: Tensor | None = None, visible: Tensor | None = None
    ) -> Tensor:
        if visible_pixels is not None:
            x = x * visible_pixels.permute(0, 3, 1, 2)
        y = self.act(self.norm_in(self.conv(x).permute(0, 2, 3, 1)))
        y = self.norm(conv_nhwc(self.conv_dw, y))
        return y if visible is None else y * visible

    def forward_packed(self, x: Tensor, mask: PatchMask) -> Tensor:
        batch, k, p = x.shape[0], mask.num_keep, self.patch_size
        x = x * mask.visible(p).permute(0, 3, 1, 2).to(x.dtype)
        windows = patch_windows(x, mask, p, halo=1)
        y = F.conv2d(windows, self.conv.weight, self.conv.bias).permute(0, 2, 3, 1)
        y = self.act(self.norm_in(y)).reshape(batch, k, p, p, -1)
        return self.norm(patch_depthwise_conv(y, self.conv_dw.weight, self.conv_dw.bias))


class ConvNeXtStem(nn.Module):
    """The original ConvNeXt stem: conv f×f/f → LN (timm ``stem.0``, ``stem.1``)."""

    def __init__(self, in_chans: int, dim: int, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        stride = patch_size // STAGE0_CELLS_PER_PATCH
        self.conv = nn.Conv2d(in_chans, dim, kernel_size=stride, stride=stride)
        self.norm = layer_norm(dim)

    def forward(
        self, x: Tensor, visible_pixels: Tensor | None = None, visible: Tensor | None = None
    ) -> Tensor:
        # Patch-local: hidden pixels cannot reach a visible cell, only the bias needs re-zeroing.
        y = self.norm(self.conv(x).permute(0, 2, 3, 1))
        return y if visible is None else y * visible

    def forward_packed(self, x: Tensor, mask: PatchMask) -> Tensor:
        batch, k = x.shape[0], mask.num_keep
        y = self.conv(patch_windows(x, mask, self.patch_size)).permute(0, 2, 3, 1)
        cells = STAGE0_CELLS_PER_PATCH
        return self.norm(y).reshape(batch, k, cells, cells, -1)


# The registry of stems, keyed by the config's choices (choices.STEM_NAMES).
STEMS: dict[str, type[nn.Module]] = {"mmearth": MMEarthStem, "convnext": ConvNeXtStem}
