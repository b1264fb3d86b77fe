"""A converged linear probe: logistic regression on a frozen encoder's cached embeddings.

MMEarth's linear recipe takes ceil(n / 1024) AdamW steps an epoch, so a split of fewer
than 1,024 samples gets 100 steps in all and its head stops far from its optimum: on the
small label-efficiency partitions it measures the recipe as much as the features. This
probe fits the same linear model until it has converged, so that its score is the
features': multinomial logistic regression (one sigmoid per label for multi-label) on
embeddings standardised with the train split's mean and std, full-batch L-BFGS with a
strong-Wolfe line search, the L2 strength (on the mean loss; the bias is not penalised)
chosen on the valid split from a log-spaced grid (by its metric; between equal scores, by
its loss).

The grid is walked from the strongest L2 to the weakest, each fit starting from the last
one's weights (a warm start). Each fit runs on features whitened for its L2 (``_Problem``):
the same problem, better conditioned: on the demo encoder's features the grid took a third
of the iterations of the plain fit, most of whose weak-L2 fits stopped at the bound
(docs/evaluate.md). The chosen fit is the one on train: the valid split is never trained
on, because a label-efficiency partition shrinks only train, and train + valid would give
a 1 % partition many times its share of labels. Float64 and a zero start: the same inputs
give the same head, bit for bit, on one thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from mpmae.evaluate.config import LogisticConfig
from mpmae.evaluate.protocols.metrics import LABEL_COUNTS, REDUCERS

DTYPE = torch.float64
MIN_STD = 1e-6  # a constant feature is centred to 0, not divided by 0
HISTORY = 20  # L-BFGS curvature pairs kept


@dataclass(frozen=True)
class LogisticFit:
    """The chosen head, on features standardised by ``mean`` and ``std``, and how it was
    chosen: its L2 strength, its L-BFGS iterations, whether the gradient reached the
    tolerance (in the whitened coordinates the fit runs in, see ``_Problem``), and its
    score on the valid split."""

    weight: Tensor  # (classes, dim)
    bias: Tensor  # (classes,)
    mean: Tensor
    std: Tensor
    l2: float
    iterations: int
    converged: bool
    valid_score: float

    def logits(self, x: Tensor) -> Tensor:
        return _standardise(x, self.mean, self.std) @ self.weight.T + self.bias


def l2_grid(cfg: LogisticConfig) -> list[float]:
    """The L2 strengths, strongest first, log-spaced."""
    grid = torch.logspace(torch.log10(torch.tensor(cfg.l2_max, dtype=DTYPE)),
                          torch.log10(torch.tensor(cfg.l2_min, dtype=DTYPE)), cfg.l2_steps,
                          dtype=DTYPE)
    return [float(v) for v in grid]


def fit_logistic(train_x: Tensor, train_y: Tensor, valid_x: Tensor, valid_y: Tensor,
                 n_classes: int, cfg: LogisticConfig, multilabel: bool = False,
                 metric: str = "") -> LogisticFit:
    """The fit on train whose L2 scores best on valid by ``metric`` (empty: accuracy, or
    micro-F1 for multi-label); between equal scores, the one with the lower valid loss (a
    small valid split ties often, and its loss still tells a confident right answer from a
    hesitant one)."""
    mean, std = train_x.to(DTYPE).mean(0), train_x.to(DTYPE).std(0).clamp_min(MIN_STD)
    z_train, z_valid = _standardise(train_x, mean, std), _standardise(valid_x, mean, std)
    problem = _Problem.of(z_train, train_y, multilabel)
    weight = torch.zeros(n_classes, train_x.shape[1], dtype=DTYPE)
    bias = torch.zeros(n_classes, dtype=DTYPE)
    metric = metric or ("f1_micro" if multilabel else "accuracy")
    best, best_key = None, (-math.inf, -math.inf)
    for l2 in l2_grid(cfg):
        weight, bias, iterations, gradient = problem.minimise(weight, bias, l2, cfg)
        logits = z_valid @ weight.T + bias
        valid_score = _metric(logits, valid_y, metric)
        key = (valid_score, -float(_loss(logits, valid_y, multilabel)))
        if key > best_key:
            best = LogisticFit(weight, bias, mean, std, l2, iterations,
                               gradient <= cfg.tolerance, valid_score)
            best_key = key
    assert best is not None  # the grid has at least one point (LogisticConfig.validate)
    return best


@dataclass(frozen=True)
class _Problem:
    """The train split in the eigenbasis of its features' covariance, where each L2's fit
    runs on whitened features: standardised embeddings are strongly correlated (a few
    directions carry most of the variance, many almost none), which leaves plain L-BFGS
    at its iteration bound at a weak L2. Weights U on features z V (E + l2)^-1/2
    are the weights W = U (E + l2)^-1/2 V^T on z, and the penalty is written on W: the same
    problem and the same optimum, only well conditioned."""

    rotated: Tensor  # z V: (N, D)
    basis: Tensor  # V: (D, D), columns the covariance's eigenvectors
    eigenvalues: Tensor  # E: (D,)
    y: Tensor
    multilabel: bool

    @classmethod
    def of(cls, z: Tensor, y: Tensor, multilabel: bool) -> _Problem:
        eigenvalues, basis = torch.linalg.eigh(z.T @ z / len(z))
        return cls(z @ basis, basis, eigenvalues.clamp_min(0), y, multilabel)

    def minimise(self, weight: Tensor, bias: Tensor, l2: float, cfg: LogisticConfig
                 ) -> tuple[Tensor, Tensor, int, float]:
        """L-BFGS from (weight, bias) at strength ``l2``: the weights and bias it ends at,
        its iterations, and the largest entry of the gradient there (in the whitened
        coordinates it runs in, the one its tolerance is checked on)."""
        scale = (self.eigenvalues + l2).rsqrt()
        whitened = self.rotated * scale
        params = torch.cat([weight @ self.basis / scale, bias[:, None]], 1).requires_grad_()

        def objective() -> Tensor:
            u = params[:, :-1]
            return (_loss(whitened @ u.T + params[:, -1], self.y, self.multilabel)
                    + 0.5 * l2 * (u * scale).square().sum())

        optimizer = torch.optim.LBFGS([params], lr=1, max_iter=cfg.max_iter,
                                      max_eval=2 * cfg.max_iter, tolerance_grad=cfg.tolerance,
                                      tolerance_change=0, history_size=HISTORY,
                                      line_search_fn="strong_wolfe")

        def closure() -> Tensor:
            optimizer.zero_grad()
            loss = objective()
            loss.backward()
            return loss

        with torch.enable_grad():
            optimizer.step(closure)
            [gradient] = torch.autograd.grad(objective(), [params])
        found = params.detach()
        return ((found[:, :-1] * scale) @ self.basis.T, found[:, -1],
                int(optimizer.state_dict()["state"][0]["n_iter"]), float(gradient.abs().max()))


def _standardise(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    return (x.to(DTYPE) - mean) / std


def _loss(logits: Tensor, y: Tensor, multilabel: bool) -> Tensor:
    """Mean over samples of the cross-entropy, or for multi-label of the binary
    cross-entropies summed over labels (each label its own one-vs-rest problem)."""
    if multilabel:
        return F.binary_cross_entropy_with_logits(logits, y.to(DTYPE), reduction="sum") / len(y)
    return F.cross_entropy(logits, y)


def _metric(logits: Tensor, y: Tensor, metric: str) -> float:
    counts = LABEL_COUNTS[metric](logits, y)
    if metric == "accuracy":  # its reducer takes the mean count, the others the sums
        return float(counts.mean())
    return float(REDUCERS[metric](counts.sum(0)))
