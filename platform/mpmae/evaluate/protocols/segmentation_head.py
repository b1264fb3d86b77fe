"""Frozen-encoder segmentation: a light head trained on cached stage maps.

The encoder is frozen, so its stage maps are computed once (stages 2–4: stage 1 is at
full resolution and would cost the most memory for the least context) and the head's
epochs read them from memory. The full U-Net fine-tune is a separate protocol. Pixel
regression (GEO-Bench-2's BioMassters) trains the same head with one output channel and a
mean squared error instead of the cross-entropy.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mpmae.evaluate.config import SegmentationConfig
from mpmae.train.engine.schedule import WarmupCosine

FIRST_STAGE = 1  # index of the first stage map the head reads (stage 2)


class SegmentationHead(nn.Module):
    """Each stage map → 1x1 conv to ``width``, upsampled to the first one's size and
    summed; GELU; 1x1 conv to the classes; upsampled to ``out_size``."""

    def __init__(self, stage_dims: list[int], width: int, n_classes: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(d, width, 1) for d in stage_dims)
        self.classify = nn.Conv2d(width, n_classes, 1)

    def forward(self, maps: list[Tensor], out_size: tuple[int, int]) -> Tensor:
        size = maps[0].shape[-2:]
        x = sum(F.interpolate(conv(m), size=size, mode="bilinear", align_corners=False)
                for conv, m in zip(self.lateral, maps, strict=True))
        logits = self.classify(F.gelu(x))
        return F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)


def train_segmentation_head(maps: list[Tensor], labels: Tensor, n_classes: int,
                            cfg: SegmentationConfig, seed: int,
                            input_size: tuple[int, int]) -> SegmentationHead:
    """The head after ``cfg.epochs`` epochs over cached ``maps`` (one tensor per stage,
    (N, C, h, w)) and ``labels`` (N, H, W); ``input_size`` is what the encoder saw (the
    labels' size, or more where the input was padded)."""
    return _train_head(maps, labels, n_classes, F.cross_entropy, cfg, seed, input_size)


def train_regression_head(maps: list[Tensor], targets: Tensor, cfg: SegmentationConfig,
                          seed: int, input_size: tuple[int, int]) -> SegmentationHead:
    """The same head with one output channel, trained by mean squared error on (N, H, W)
    float ``targets``."""
    return _train_head(maps, targets, 1, regression_loss, cfg, seed, input_size)


def regression_loss(outputs: Tensor, targets: Tensor) -> Tensor:
    """MSE of the one-channel (N, 1, H, W) ``outputs`` against (N, H, W) ``targets``."""
    return F.mse_loss(outputs[:, 0], targets)


def _train_head(maps: list[Tensor], labels: Tensor, n_outputs: int,
                loss_of: Callable[[Tensor, Tensor], Tensor], cfg: SegmentationConfig,
                seed: int, input_size: tuple[int, int]) -> SegmentationHead:
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    head = SegmentationHead([m.shape[1] for m in maps], cfg.width, n_outputs)
    n, (h, w) = len(labels), labels.shape[-2:]
    batch = min(cfg.batch_size, n)
    steps_per_epoch = math.ceil(n / batch)
    total = cfg.epochs * steps_per_epoch
    optimizer = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = WarmupCosine(cfg.lr, 0.0, 0, total)
    with torch.enable_grad():
        for epoch in range(cfg.epochs):
            order = torch.randperm(n, generator=generator)
            for i, start in enumerate(range(0, n, batch)):
                rows = order[start : start + batch]
                logits = head([m[rows].float() for m in maps], input_size)[..., :h, :w]
                loss = loss_of(logits, labels[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                schedule.apply(optimizer, epoch * steps_per_epoch + i)
                optimizer.step()
    return head.eval()


def stage_maps(encoder: nn.Module, x: Tensor) -> list[Tensor]:
    """The frozen encoder's stage maps the head reads, kept in bfloat16 to halve the cache."""
    with torch.no_grad():
        return [m.to(torch.bfloat16).cpu() for m in encoder.forward_features(x)[FIRST_STAGE:]]
