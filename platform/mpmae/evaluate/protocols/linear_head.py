"""A linear probe: a fresh linear head trained on a frozen encoder's cached embeddings.

The encoder is frozen, so its embeddings are computed once and every one of the head's
epochs reads them from memory: the reference's 100 epochs cost seconds, not hours. The
recipe is MMEarth's (AdamW, lr = blr × batch / 256, no warm-up, cosine decay, label-
smoothed cross-entropy, or label-smoothed BCE for multi-label; trunc-normal init std 2e-5);
the last epoch's head is the one scored.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mpmae.evaluate.config import LinearConfig
from mpmae.train.engine.schedule import WarmupCosine

HEAD_INIT_STD = 2e-5


def train_linear_head(train_x: Tensor, train_y: Tensor, num_classes: int, cfg: LinearConfig,
                      seed: int, multilabel: bool = False) -> nn.Linear:
    """The head after ``cfg.epochs`` epochs over ``(train_x, train_y)``."""
    generator = torch.Generator().manual_seed(seed)
    head = nn.Linear(train_x.shape[1], num_classes)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=generator)
                          .clamp_(-2, 2) * HEAD_INIT_STD)
        head.bias.zero_()
    batch = min(cfg.batch_size, len(train_x))
    steps_per_epoch = math.ceil(len(train_x) / batch)
    total = cfg.epochs * steps_per_epoch
    # The configured batch sets the lr, as in the reference: a partition smaller than one
    # batch trains at the recipe's lr, not at one scaled down to its few samples.
    lr = cfg.blr * cfg.batch_size / 256
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    schedule = WarmupCosine(lr, cfg.min_lr, 0, total)
    loss_fn = classification_loss(cfg.label_smoothing, multilabel)
    with torch.enable_grad():
        for epoch in range(cfg.epochs):
            order = torch.randperm(len(train_x), generator=generator)
            for i, start in enumerate(range(0, len(train_x), batch)):
                rows = order[start : start + batch]
                loss = loss_fn(head(train_x[rows]), train_y[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                schedule.apply(optimizer, epoch * steps_per_epoch + i)
                optimizer.step()
    return head.eval()


def classification_loss(smoothing: float, multilabel: bool):
    """Label-smoothed cross-entropy, or label-smoothed BCE for multi-label targets."""
    if not multilabel:
        return lambda logits, y: F.cross_entropy(logits, y, label_smoothing=smoothing)

    def smoothed_bce(logits: Tensor, y: Tensor) -> Tensor:
        target = y.float() * (1 - smoothing) + smoothing / 2
        return F.binary_cross_entropy_with_logits(logits, target)

    return smoothed_bce
