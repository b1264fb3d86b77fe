"""Random patch masks with a fixed number of visible patches per sample.

Every sample keeps exactly the same number of patches, so the visible cells of a batch
pack into a dense tensor of static shape (see ``packing.py``): that is what makes the
sparse encoder CUDA-friendly and ``torch.compile``-able.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mpmae.model.choices import num_kept


@dataclass(frozen=True)
class PatchMask:
    """Which patches each sample hides.

    ``hidden`` (B, gh, gw) bool, True = masked. ``keep`` (B, K) int64: the visible patch
    indices in raster order, the same count K for every sample.
    """

    hidden: Tensor
    keep: Tensor

    @property
    def grid(self) -> tuple[int, int]:
        return self.hidden.shape[1], self.hidden.shape[2]

    @property
    def num_keep(self) -> int:
        return self.keep.shape[1]

    def visible(self, cells_per_patch: int) -> Tensor:
        """(B, gh·r, gw·r, 1) float: 1 at visible cells of a grid with r cells per patch side."""
        vis = (~self.hidden).to(torch.float32)
        vis = vis.repeat_interleave(cells_per_patch, 1).repeat_interleave(cells_per_patch, 2)
        return vis[..., None]

    @classmethod
    def from_hidden(cls, hidden: Tensor) -> PatchMask:
        """Wrap a bool mask (B, gh, gw). Reads the kept count back once (a host sync)."""
        if hidden.dtype != torch.bool or hidden.ndim != 3:
            raise ValueError("a patch mask must be a bool tensor (B, gh, gw), True = masked")
        flat = hidden.flatten(1)
        counts = (~flat).sum(1)
        k = int(counts[0])
        if k == 0 or bool((counts != k).any()):
            raise ValueError("every sample must keep the same, non-zero number of patches")
        # A stable sort puts the visible (False) patches first, in raster order.
        keep = torch.argsort(flat.to(torch.uint8), dim=1, stable=True)[:, :k]
        return cls(hidden, keep)


def random_patch_mask(
    batch_size: int,
    grid: tuple[int, int],
    mask_ratio: float,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> PatchMask:
    """An independent random mask per sample; reproducible from ``generator``.

    Noise is drawn on the generator's device (so a CPU generator gives the same masks on
    any accelerator) and the result moved to ``device``.
    """
    gh, gw = grid
    num_patches = gh * gw
    k = num_kept(num_patches, mask_ratio)
    noise_device = generator.device if generator is not None else device
    noise = torch.rand(batch_size, num_patches, generator=generator, device=noise_device)
    keep = torch.argsort(noise, dim=1)[:, :k].sort(dim=1).values
    keep = keep.to(device if device is not None else noise.device)
    hidden = torch.ones(batch_size, num_patches, dtype=torch.bool, device=keep.device)
    hidden.scatter_(1, keep, False)
    return PatchMask(hidden.view(batch_size, gh, gw), keep)
