"""A U-Net-style decoder over a ConvNeXt V2 encoder's four stage maps (MMEarth's
``convnextv2_unet``): from the last stage up, each step upsamples ×2, convolves 3×3, layer-
norms and applies GELU, then concatenates the next shallower stage map (the skip); a last
step upsamples by the stem's stride to the input size, and a 1×1 conv gives the classes.

The reference also skips from inside its stem (before the stem's striding); our encoder
exposes its stage maps only, so the last step has no skip. With patch 8 the stem does not
stride and stage 1 already has the input's size.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mpmae.model import ConvNeXtV2Encoder
from mpmae.model.blocks import layer_norm
from mpmae.model.stems import STAGE0_CELLS_PER_PATCH


class UpBlock(nn.Module):
    """Nearest upsampling → 3×3 conv → LayerNorm over channels → GELU."""

    def __init__(self, in_dim: int, out_dim: int, scale: int) -> None:
        super().__init__()
        self.upsample = nn.Upsample(scale_factor=scale, mode="nearest") if scale > 1 else None
        self.conv = nn.Conv2d(in_dim, out_dim, kernel_size=3, padding=1)
        self.norm = layer_norm(out_dim)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        if self.upsample is not None:
            x = self.upsample(x)
        x = self.norm(self.conv(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.act(x)


class UNetDecoder(nn.Module):
    def __init__(self, dims: tuple[int, ...], stem_stride: int, n_classes: int) -> None:
        super().__init__()
        d0, d1, d2, d3 = dims
        self.ups = nn.ModuleList([UpBlock(d3, d2, 2), UpBlock(2 * d2, d1, 2),
                                  UpBlock(2 * d1, d0, 2)])
        self.last = UpBlock(2 * d0, d0 // 2, stem_stride)
        self.head = nn.Conv2d(d0 // 2, n_classes, kernel_size=1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward(self, maps: list[Tensor]) -> Tensor:
        *skips, x = maps
        for up, skip in zip(self.ups, reversed(skips), strict=True):
            x = torch.cat([up(x), skip], dim=1)
        return self.head(self.last(x))


class UNet(nn.Module):
    """Encoder and decoder; logits (B, classes, H, W) at the (padded) input's size."""

    def __init__(self, encoder: ConvNeXtV2Encoder, n_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        stride = encoder.patch_size // STAGE0_CELLS_PER_PATCH
        self.decoder = UNetDecoder(tuple(encoder.dims), stride, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder.forward_features(x))
