"""One prediction head per pretext task, shaped by the modality catalogue.

Heads read the decoded grid (B, gh, gw, D), as in MMEarth: image-level targets such as
biome or climate are then learned from the same decoded features as the pixel targets,
and the encoder is trained only through the decoder for every task.

Where an image head's LayerNorm sits is ``model.image_head_norm``: ``cells`` is MMEarth's
order — one LayerNorm, shared by every image task, normalises each decoded cell before the
global average pool, then a Linear per task (the model holds that norm, see
:func:`build_cell_norm`); ``pooled`` is the ConvNeXt classifier head — pool, then a LayerNorm
and a Linear per task.
"""

from __future__ import annotations

from torch import Tensor, nn

from mpmae.modalities import MODALITIES, PretextSet
from mpmae.model.blocks import layer_norm
from mpmae.model.choices import ImageHeadNorm
from mpmae.model.convnextv2 import init_weights


class PixelHead(nn.Module):
    """1×1 conv to p·p·C values per cell: one patch of C channels (or class logits)."""

    def __init__(self, dim: int, patch_size: int, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.proj = nn.Linear(dim, patch_size * patch_size * channels)

    def forward(self, x: Tensor) -> Tensor:
        """(B, gh, gw, D) → (B, L, p·p·C) in patch raster order."""
        return self.proj(x).flatten(1, 2)


class ImageHead(nn.Module):
    """Global average pool over all cells → (LN if ``norm_pooled``) → Linear."""

    def __init__(self, dim: int, channels: int, norm_pooled: bool) -> None:
        super().__init__()
        self.norm = layer_norm(dim) if norm_pooled else None
        self.fc = nn.Linear(dim, channels)

    def forward(self, x: Tensor) -> Tensor:
        """(B, gh, gw, D) → (B, C)."""
        pooled = x.mean(dim=(1, 2))
        return self.fc(pooled if self.norm is None else self.norm(pooled))


def build_heads(
    pretext: PretextSet, dim: int, patch_size: int, image_head_norm: ImageHeadNorm = "cells"
) -> nn.ModuleDict:
    """A head per task of the pretext set, sized by ``PretextSet.output_channels``."""
    heads = nn.ModuleDict()
    for task in pretext.tasks:
        channels = pretext.output_channels(task)
        if MODALITIES[task].kind.is_pixel:
            heads[task] = PixelHead(dim, patch_size, channels)
        else:
            heads[task] = ImageHead(dim, channels, norm_pooled=image_head_norm == "pooled")
    heads.apply(init_weights)
    return heads


def build_cell_norm(
    pretext: PretextSet, dim: int, image_head_norm: ImageHeadNorm
) -> nn.LayerNorm | None:
    """The per-cell LayerNorm shared by the image heads (``cells``); None when the heads
    normalise after pooling or the set has no image task (DDP refuses unused parameters)."""
    has_image_task = any(not MODALITIES[task].kind.is_pixel for task in pretext.tasks)
    return layer_norm(dim) if image_head_norm == "cells" and has_image_task else None
