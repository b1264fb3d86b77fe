"""Cosine k-nearest-neighbour classification on frozen embeddings (no training).

Neighbours vote with weight exp(similarity / T), as in the kNN evaluation of DINO and
its successors: close neighbours count more than the k-th. Multi-label targets average the
neighbours' label vectors the same way.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

CHUNK = 1024  # test rows per similarity matrix: bounds memory on large splits


def knn_logits(train_x: Tensor, train_y: Tensor, test_x: Tensor, num_classes: int, k: int,
               temperature: float, multilabel: bool = False) -> Tensor:
    """(N_test, classes) scores. Single-label: log of the weighted vote share (arg-max is
    the prediction); multi-label: the logit of each label's weighted vote share."""
    train_x, test_x = F.normalize(train_x.float(), dim=1), F.normalize(test_x.float(), dim=1)
    targets = train_y.float() if multilabel else F.one_hot(train_y, num_classes).float()
    k = min(k, len(train_x))
    parts = []
    for start in range(0, len(test_x), CHUNK):
        similarity, index = (test_x[start : start + CHUNK] @ train_x.T).topk(k, dim=1)
        weights = (similarity / temperature).exp()
        votes = (weights.unsqueeze(2) * targets[index]).sum(1) / weights.sum(1, keepdim=True)
        parts.append(torch.logit(votes, eps=1e-6) if multilabel else votes.clamp_min(1e-12).log())
    return torch.cat(parts)
