"""Images ↔ per-patch vectors, in the (p, p, C) order the pixel heads predict."""

from __future__ import annotations

from torch import Tensor


def patchify(x: Tensor, patch: int) -> Tensor:
    """(B, C, H, W) → (B, L, p·p·C), or (B, H, W) → (B, L, p·p); patches in raster order."""
    if x.ndim == 3:
        x = x[:, None]
    batch, channels, height, width = x.shape
    gh, gw = height // patch, width // patch
    x = x.reshape(batch, channels, gh, patch, gw, patch).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(batch, gh * gw, patch * patch * channels)


def unpatchify(x: Tensor, patch: int, grid: tuple[int, int]) -> Tensor:
    """(B, L, p·p·C) → (B, C, H, W); the inverse of ``patchify``."""
    batch = x.shape[0]
    gh, gw = grid
    x = x.reshape(batch, gh, gw, patch, patch, -1).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(batch, -1, gh * patch, gw * patch)
