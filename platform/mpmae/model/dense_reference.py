"""The dense-masked reference encoder, for tests and the benchmark.

It shares the wrapped encoder's weights and runs every op densely over the whole grid,
re-zeroing hidden cells after each spatial op, before each GRN and after each block
(``ConvNeXtV2Encoder.forward_dense`` with a mask). It is obviously correct and slow: the
sparse path must match it, and beat it.
"""

from __future__ import annotations

from torch import Tensor, nn

from mpmae.model.convnextv2 import ConvNeXtV2Encoder
from mpmae.model.masking import PatchMask


class DenseMaskedReference(nn.Module):
    """Drop-in for ``ConvNeXtV2Encoder`` (same masked methods) that computes densely."""

    def __init__(self, encoder: ConvNeXtV2Encoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward_features(self, x: Tensor, mask: Tensor | PatchMask | None = None) -> list[Tensor]:
        return [f.permute(0, 3, 1, 2) for f in self.encoder.forward_dense(x, mask)]

    def forward_masked(self, x: Tensor, mask: Tensor | PatchMask) -> Tensor:
        return self.encoder.forward_dense(x, mask)[-1].permute(0, 3, 1, 2)
