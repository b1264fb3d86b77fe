"""One prediction head per pretext task, shaped by the modality catalogue.

Heads read the decoded grid (B, gh, gw, D), as in MMEarth: image-level targets such as
biome or climate are then learned from the same decoded features as the pixel targets,
and the encoder is trained only through the decoder for every task.
"""

from __future__ import annotations

from torch import Tensor, nn

from mpmae.modalities import MODALITIES, PretextSet
from mpmae.model.blocks import layer_norm
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
    """Global average pool over all cells → LN → Linear (the ConvNeXt classifier head)."""

    def __init__(self, dim: int, channels: int) -> None:
        super().__init__()
        self.norm = layer_norm(dim)
        self.fc = nn.Linear(dim, channels)

    def forward(self, x: Tensor) -> Tensor:
        """(B, gh, gw, D) → (B, C)."""
        return self.fc(self.norm(x.mean(dim=(1, 2))))


def build_heads(pretext: PretextSet, dim: int, patch_size: int) -> nn.ModuleDict:
    """A head per task of the pretext set, sized by ``PretextSet.output_channels``."""
    heads = nn.ModuleDict()
    for task in pretext.tasks:
        channels = pretext.output_channels(task)
        if MODALITIES[task].kind.is_pixel:
            heads[task] = PixelHead(dim, patch_size, channels)
        else:
            heads[task] = ImageHead(dim, channels)
    heads.apply(init_weights)
    return heads
