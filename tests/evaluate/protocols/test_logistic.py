"""The converged logistic probe: full-batch L-BFGS on standardised features, its L2 chosen
on the valid split, multi-label as one sigmoid per label, the same fit every time."""

from __future__ import annotations

import torch

from mpmae.evaluate.config import LogisticConfig
from mpmae.evaluate.protocols.logistic import fit_logistic, l2_grid

CFG = LogisticConfig(l2_min=1e-5, l2_max=10.0, l2_steps=7, max_iter=300, tolerance=1e-6)


def _blobs(n: int, classes: int, dim: int, noise: float, seed: int, informative: int = 4):
    """Classes apart along the first ``informative`` dims (centres shared across seeds) under
    Gaussian noise of std ``noise``, unit noise on the other dims, and an offset and scale
    that standardising must undo."""
    centres = torch.randn(classes, informative, generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.randn(n, dim, generator=g)
    x[:, :informative] = 3 * centres[y] + noise * x[:, :informative]
    return (x * 50 + 1000).float(), y


def _accuracy(fit, x, y) -> float:
    return float((fit.logits(x).argmax(1) == y).float().mean())


def test_the_grid_runs_from_the_strongest_l2_to_the_weakest():
    grid = l2_grid(CFG)
    assert len(grid) == 7 and grid[0] == 10.0 and abs(grid[-1] - 1e-5) < 1e-12
    assert grid == sorted(grid, reverse=True)


def test_a_separable_problem_is_recovered_and_the_fit_converges():
    (x, y), (vx, vy), (tx, ty) = (_blobs(n, 3, 16, 0.3, s) for n, s in ((90, 0), (30, 1),
                                                                        (300, 2)))
    fit = fit_logistic(x, y, vx, vy, 3, CFG)
    assert _accuracy(fit, tx, ty) == 1.0 and fit.valid_score == 1.0
    assert fit.converged and fit.iterations < CFG.max_iter
    assert fit.l2 in l2_grid(CFG)


def test_the_chosen_l2_grows_with_the_noise():
    """Few samples, many dims: a clean signal earns a weak L2, a noisy one a strong one."""
    chosen = {}
    for noise in (0.5, 4.0):
        (x, y), (vx, vy) = _blobs(40, 2, 100, noise, 0), _blobs(200, 2, 100, noise, 1)
        chosen[noise] = fit_logistic(x, y, vx, vy, 2, CFG).l2
    assert chosen[4.0] >= 100 * chosen[0.5]


def test_multi_label_fits_one_sigmoid_per_label():
    x, _ = _blobs(400, 2, 8, 1.0, 0)
    rule = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    labels = lambda v: ((v[:, :4] - 1000) / 50 @ rule > 0).float()  # noqa: E731
    test_x, _ = _blobs(200, 2, 8, 1.0, 2)
    fit = fit_logistic(x[:300], labels(x[:300]), x[300:], labels(x[300:]), 3, CFG,
                       multilabel=True)
    predicted = fit.logits(test_x) > 0
    assert fit.logits(test_x).shape == (200, 3)
    assert (predicted == labels(test_x).bool()).float().mean() > 0.95
    assert not predicted[:, 2].any()  # a label no sample carries is never predicted


def test_the_same_inputs_give_the_same_fit_bit_for_bit():
    (x, y), (vx, vy) = _blobs(60, 4, 32, 2.0, 0), _blobs(40, 4, 32, 2.0, 1)
    first, again = (fit_logistic(x, y, vx, vy, 4, CFG) for _ in range(2))
    assert torch.equal(first.weight, again.weight) and torch.equal(first.bias, again.bias)
    assert (first.l2, first.iterations) == (again.l2, again.iterations)
