"""The frozen-encoder protocols on cached features: kNN (no training), MMEarth's linear
probe (a fresh head per seed) and the converged logistic probe on pooled embeddings, and a
light segmentation head on stage maps; each scored on the whole test split with a 95 %
interval, with what its recipe settled on (``details``)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mpmae.evaluate.config import EvaluateConfig
from mpmae.evaluate.protocols.knn import knn_logits
from mpmae.evaluate.protocols.linear_head import train_linear_head
from mpmae.evaluate.protocols.logistic import fit_logistic
from mpmae.evaluate.protocols.metrics import (
    LABEL_COUNTS,
    Score,
    iou_counts,
    score,
    squared_error_counts,
)
from mpmae.evaluate.protocols.recipes import KNN_VOTE
from mpmae.evaluate.protocols.segmentation_head import (
    train_regression_head,
    train_segmentation_head,
)

Features = tuple[list[Tensor], Tensor]  # (features, labels) of one split
SEGMENTATION_CHUNK = 64  # test samples per forward of the segmentation head
# GEO-Bench's label kind → the metric every protocol scores it by.
METRICS = {"classification": "accuracy", "multi_label": "f1_micro", "segmentation": "miou",
           "regression": "rmse"}
# GEO-Bench-2's: its leaderboard scores multi-label sets by macro F1 over labels
# (``Multilabel_F1_Score``), which micro F1 is not.
GEOBENCH2_METRICS = {**METRICS, "multi_label": "f1_macro"}


@dataclass(frozen=True)
class Scored:
    """A protocol's test score and what its recipe settled on or decided by (the steps
    it took, the L2 it chose, how kNN votes), for the result row."""

    score: Score
    details: dict[str, Any]


def protocol_score(cfg: EvaluateConfig, kind: str, train: Features, test: Features,
                   n_classes: int, seed: int, input_size: tuple[int, int],
                   valid: Features | None = None, metric: str = "") -> Scored:
    """``kind``: classification, multi_label, segmentation or regression (pixel-wise);
    ``input_size``: what the encoder saw (padded), which segmentation logits are cropped
    from back to the labels' size; ``valid``: the split protocol logistic chooses its L2
    on (the others do not read it); ``metric``: a scene label's metric (empty:
    ``METRICS[kind]``; GEO-Bench-2's multi-label sets: ``f1_macro``)."""
    if kind == "segmentation":
        return _segmentation(cfg, train, test, n_classes, seed, input_size)
    if kind == "regression":
        return _regression(cfg, train, test, seed, input_size)
    ([train_x], train_y), ([test_x], test_y) = train, test
    metric = metric or METRICS[kind]
    if cfg.protocol == "knn":
        logits, details = _knn(cfg, kind, train_x, train_y, test_x, n_classes)
    elif cfg.protocol == "logistic":
        if valid is None:
            raise ValueError("protocol logistic needs the valid split's features")
        logits, details = _logistic(cfg, kind, (train_x, train_y), valid, test_x, n_classes,
                                    metric)
    else:
        logits, details = _linear(cfg, kind, train_x, train_y, test_x, n_classes, seed)
    return Scored(score(metric, LABEL_COUNTS[metric](logits, test_y), seed=seed), details)


def _knn(cfg: EvaluateConfig, kind: str, train_x: Tensor, train_y: Tensor, test_x: Tensor,
         n_classes: int) -> tuple[Tensor, dict[str, Any]]:
    logits = knn_logits(train_x, train_y, test_x, n_classes, cfg.knn.k, cfg.knn.temperature,
                        multilabel=kind == "multi_label")
    return logits, {"k": min(cfg.knn.k, len(train_x)), "temperature": cfg.knn.temperature,
                    "knn_vote": KNN_VOTE[kind]}


def _logistic(cfg: EvaluateConfig, kind: str, train: tuple[Tensor, Tensor], valid: Features,
              test_x: Tensor, n_classes: int, metric: str) -> tuple[Tensor, dict[str, Any]]:
    ([valid_x], valid_y) = valid
    start = time.perf_counter()
    fit = fit_logistic(*train, valid_x, valid_y, n_classes, cfg.logistic,
                       multilabel=kind == "multi_label", metric=metric)
    return fit.logits(test_x), {
        "l2": fit.l2, "iterations": fit.iterations, "converged": fit.converged,
        f"valid_{metric}": fit.valid_score, "n_valid": len(valid_y), "fit_on": "train",
        "features": "standardised with the train split's mean and std",
        "fit_s": round(time.perf_counter() - start, 3)}  # the whole grid, on one thread


def _linear(cfg: EvaluateConfig, kind: str, train_x: Tensor, train_y: Tensor, test_x: Tensor,
            n_classes: int, seed: int) -> tuple[Tensor, dict[str, Any]]:
    head = train_linear_head(train_x, train_y, n_classes, cfg.linear, seed,
                             multilabel=kind == "multi_label")
    return head(test_x).detach(), _steps(cfg.linear.epochs, cfg.linear.batch_size, len(train_x))


def _steps(epochs: int, batch_size: int, n: int) -> dict[str, int]:
    """The optimizer steps a recipe of ``epochs`` at ``batch_size`` takes on ``n`` samples:
    one an epoch when the split is smaller than a batch."""
    batch = min(batch_size, n)
    return {"epochs": epochs, "batch": batch, "steps": epochs * math.ceil(n / batch)}


def _segmentation(cfg: EvaluateConfig, train: Features, test: Features, n_classes: int,
                  seed: int, input_size: tuple[int, int]) -> Scored:
    (train_maps, train_y), (test_maps, test_y) = train, test
    head = train_segmentation_head(train_maps, train_y, n_classes, cfg.segmentation, seed,
                                   input_size)
    h, w = test_y.shape[-2:]
    counts = []
    for start in range(0, len(test_y), SEGMENTATION_CHUNK):  # full-size logits are large
        rows = slice(start, start + SEGMENTATION_CHUNK)
        logits = head([m[rows].float() for m in test_maps], input_size)[..., :h, :w]
        counts.append(iou_counts(logits.detach(), test_y[rows], n_classes))
    return Scored(score(METRICS["segmentation"], torch.cat(counts), seed=seed),
                  _steps(cfg.segmentation.epochs, cfg.segmentation.batch_size, len(train_y)))


def _regression(cfg: EvaluateConfig, train: Features, test: Features, seed: int,
                input_size: tuple[int, int]) -> Scored:
    """The segmentation head's recipe with one output channel and MSE; scored by RMSE over
    every test pixel, in the target's units as the reader gives them."""
    (train_maps, train_y), (test_maps, test_y) = train, test
    head = train_regression_head(train_maps, train_y, cfg.segmentation, seed, input_size)
    h, w = test_y.shape[-2:]
    counts = []
    for start in range(0, len(test_y), SEGMENTATION_CHUNK):
        rows = slice(start, start + SEGMENTATION_CHUNK)
        outputs = head([m[rows].float() for m in test_maps], input_size)[..., :h, :w]
        counts.append(squared_error_counts(outputs.detach(), test_y[rows]))
    return Scored(score(METRICS["regression"], torch.cat(counts), seed=seed),
                  _steps(cfg.segmentation.epochs, cfg.segmentation.batch_size, len(train_y)))
