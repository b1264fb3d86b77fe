"""The frozen-encoder protocols on cached embeddings: kNN (no training) and the linear
probe (a fresh head per seed), each scored on the whole test split with a 95 % interval."""

from __future__ import annotations

from torch import Tensor

from mpmae.evaluate.config import KnnConfig, LinearConfig
from mpmae.evaluate.knn import knn_logits
from mpmae.evaluate.linear_head import train_linear_head
from mpmae.evaluate.metrics import Score, accuracy_counts, f1_micro_counts, score

PROTOCOLS = ("knn", "linear")
METRIC_OF_KIND = {"classification": "accuracy", "multi_label": "f1_micro"}


def protocol_score(protocol: str, kind: str, train: tuple[Tensor, Tensor],
                   test: tuple[Tensor, Tensor], n_classes: int, seed: int,
                   knn: KnnConfig, linear: LinearConfig) -> Score:
    """``train``/``test``: (embeddings, labels). ``kind``: classification or multi_label."""
    multilabel = kind == "multi_label"
    (train_x, train_y), (test_x, test_y) = train, test
    if protocol == "knn":
        logits = knn_logits(train_x, train_y, test_x, n_classes, knn.k, knn.temperature,
                            multilabel=multilabel)
    else:
        head = train_linear_head(train_x, train_y, n_classes, linear, seed, multilabel)
        logits = head(test_x).detach()
    counts = f1_micro_counts(logits, test_y) if multilabel else accuracy_counts(logits, test_y)
    return score(METRIC_OF_KIND[kind], counts, seed=seed)
