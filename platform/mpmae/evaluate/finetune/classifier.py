"""The classification model a fine-tune trains: the encoder (with drop path) and a fresh
linear head on its pooled, layer-normed embedding."""

from __future__ import annotations

import dataclasses

from torch import Tensor, nn

from mpmae.model import ConvNeXtV2Encoder

# The reference initialises the head trunc-normal (std 0.02) and scales it by 0.001.
HEAD_INIT_STD = 2e-5


def with_drop_path(encoder: ConvNeXtV2Encoder, rate: float) -> ConvNeXtV2Encoder:
    """A trainable copy of ``encoder`` whose blocks drop paths up to ``rate``."""
    copy = ConvNeXtV2Encoder(dataclasses.replace(encoder.config, drop_path_rate=rate))
    copy.load_state_dict(encoder.state_dict())
    return copy


class Classifier(nn.Module):
    def __init__(self, encoder: ConvNeXtV2Encoder, n_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.num_features, n_classes)
        nn.init.trunc_normal_(self.head.weight, std=HEAD_INIT_STD)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder.embed(x))
