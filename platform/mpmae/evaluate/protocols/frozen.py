"""The frozen-encoder protocols on cached features: kNN (no training) and the linear probe
(a fresh head per seed) on pooled embeddings, and a light segmentation head on stage maps;
each scored on the whole test split with a 95 % interval."""

from __future__ import annotations

import torch
from torch import Tensor

from mpmae.evaluate.config import EvaluateConfig
from mpmae.evaluate.protocols.knn import knn_logits
from mpmae.evaluate.protocols.linear_head import train_linear_head
from mpmae.evaluate.protocols.metrics import (
    Score,
    accuracy_counts,
    f1_micro_counts,
    iou_counts,
    score,
)
from mpmae.evaluate.protocols.segmentation_head import train_segmentation_head

Features = tuple[list[Tensor], Tensor]  # (features, labels) of one split
SEGMENTATION_CHUNK = 64  # test samples per forward of the segmentation head
# GEO-Bench's label kind → the metric every protocol scores it by.
METRICS = {"classification": "accuracy", "multi_label": "f1_micro", "segmentation": "miou"}


def protocol_score(cfg: EvaluateConfig, kind: str, train: Features, test: Features,
                   n_classes: int, seed: int, input_size: tuple[int, int]) -> Score:
    """``kind``: classification, multi_label or segmentation (GEO-Bench's label kinds);
    ``input_size``: what the encoder saw (padded), which segmentation logits are cropped
    from back to the labels' size."""
    if kind == "segmentation":
        return _segmentation(cfg, train, test, n_classes, seed, input_size)
    multilabel = kind == "multi_label"
    ([train_x], train_y), ([test_x], test_y) = train, test
    if cfg.protocol == "knn":
        logits = knn_logits(train_x, train_y, test_x, n_classes, cfg.knn.k,
                            cfg.knn.temperature, multilabel=multilabel)
    else:
        head = train_linear_head(train_x, train_y, n_classes, cfg.linear, seed, multilabel)
        logits = head(test_x).detach()
    counts = f1_micro_counts if multilabel else accuracy_counts
    return score(METRICS[kind], counts(logits, test_y), seed=seed)


def _segmentation(cfg: EvaluateConfig, train: Features, test: Features, n_classes: int,
                  seed: int, input_size: tuple[int, int]) -> Score:
    (train_maps, train_y), (test_maps, test_y) = train, test
    head = train_segmentation_head(train_maps, train_y, n_classes, cfg.segmentation, seed,
                                   input_size)
    h, w = test_y.shape[-2:]
    counts = []
    for start in range(0, len(test_y), SEGMENTATION_CHUNK):  # full-size logits are large
        rows = slice(start, start + SEGMENTATION_CHUNK)
        logits = head([m[rows].float() for m in test_maps], input_size)[..., :h, :w]
        counts.append(iou_counts(logits.detach(), test_y[rows], n_classes))
    return score(METRICS["segmentation"], torch.cat(counts), seed=seed)
