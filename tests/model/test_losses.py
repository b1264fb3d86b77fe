"""Each loss on small hand-computed cases, with missing targets."""

import math

import pytest
import torch

from mpmae.modalities import IGNORE_INDEX
from mpmae.model.losses import (
    cross_entropy,
    denormalise_patches,
    mse,
    normalise_patches,
    task_loss,
)
from mpmae.model.patches import patchify

NAN = float("nan")


def test_mse_ignores_nan_and_inf_targets():
    pred = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    loss, count = mse(pred, torch.tensor([0.0, NAN, 5.0, -math.inf]))
    assert count == 2 and loss.item() == pytest.approx((1 + 4) / 2)
    loss.backward()
    assert pred.grad.tolist() == [1.0, 0.0, -2.0, 0.0]


def test_all_missing_gives_exact_zero_with_a_finite_gradient():
    pred = torch.randn(3, 4, requires_grad=True)
    loss, count = mse(pred, torch.full((3, 4), NAN))
    assert count == 0 and loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(pred.grad, torch.zeros(3, 4))
    logits = torch.randn(5, 3, requires_grad=True)
    loss, count = cross_entropy(logits, torch.full((5,), IGNORE_INDEX))
    assert count == 0 and loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(5, 3))


def test_cross_entropy_ignores_minus_one():
    logits = torch.tensor([[0.0, 0.0], [2.0, 0.0], [5.0, -5.0]])
    loss, count = cross_entropy(logits, torch.tensor([1, 0, IGNORE_INDEX]))
    expected = (math.log(2) + math.log(1 + math.exp(-2))) / 2
    assert count == 2 and loss.item() == pytest.approx(expected, rel=1e-6)


def test_per_patch_normalisation_uses_nan_ignoring_unbiased_statistics():
    patches = torch.tensor([[[1.0, 2.0, 3.0, NAN]]])
    out = normalise_patches(patches)
    scale = math.sqrt(1.0 + 1e-6)  # mean 2, unbiased variance 1
    assert out[0, 0, :3].tolist() == pytest.approx([-1 / scale, 0.0, 1 / scale])
    assert math.isnan(out[0, 0, 3])
    assert torch.allclose(denormalise_patches(out[..., :3], patches[..., :3]), patches[..., :3])


def _hidden_first_patch():
    return torch.tensor([[True, False]])  # a 1×2 patch grid; only the first patch counts


def test_sentinel2_loss_is_mse_to_per_patch_normalised_target_on_hidden_patches():
    # One band, patch 2, image 2×4: patch 0 = [1, 2, 3, NaN] (hidden), patch 1 visible.
    target = torch.tensor([[[[1.0, 2.0, 9.0, 9.0], [3.0, NAN, 9.0, 7.0]]]])
    pred = torch.zeros(1, 2, 4)
    loss, count = task_loss("sentinel2", pred, target, _hidden_first_patch(), patch_size=2)
    # Normalised hidden patch: (−1, 0, 1)/sqrt(1 + 1e-6), so the mean square is 2/3.
    assert count == 3 and loss.item() == pytest.approx(2 / 3 / (1 + 1e-6), rel=1e-6)


def test_pixel_regression_uses_z_scores_as_they_are():
    target = torch.tensor([[[[1.0, 2.0, 50.0, 50.0], [3.0, NAN, 50.0, 50.0]]]])
    loss, count = task_loss("aster", torch.zeros(1, 2, 4), target, _hidden_first_patch(), 2)
    assert count == 3 and loss.item() == pytest.approx((1 + 4 + 9) / 3)


def test_pixel_classes_cross_entropy_on_hidden_patches_ignoring_minus_one():
    target = torch.tensor([[[0, IGNORE_INDEX, 3, 3], [8, 8, 3, 3]]])  # dynamic_world, 9 classes
    logits = torch.zeros(1, 2, 4 * 9)
    logits[0, 0, 9 * 3 + 8] = 2.0  # pixel (1, 1) of patch 0 favours its class, 8
    loss, count = task_loss("dynamic_world", logits, target, _hidden_first_patch(), 2)
    plain = math.log(9)
    favoured = -2.0 + math.log(math.exp(2.0) + 8)
    assert count == 3 and loss.item() == pytest.approx((2 * plain + favoured) / 3, rel=1e-6)


def test_image_tasks():
    loss, count = task_loss(
        "era5", torch.ones(2, 2), torch.tensor([[3.0, NAN], [NAN, NAN]]), None, 8
    )
    assert count == 1 and loss.item() == pytest.approx(4.0)
    loss, count = task_loss("biome", torch.zeros(2, 14), torch.tensor([3, IGNORE_INDEX]), None, 8)
    assert count == 1 and loss.item() == pytest.approx(math.log(14), rel=1e-6)


def _half_missing_s1(seed: int = 0):
    """An S1 target whose first four bands are missing, and a 2×2-patch mask."""
    g = torch.Generator().manual_seed(seed)
    target = torch.randn(2, 8, 16, 16, generator=g)
    target[:, :4] = float("nan")
    target[0, 5, :2, :2] = float("-inf")  # -inf, as missing S1 orbits are stored
    pred = torch.randn(2, 4, 8 * 8 * 8, generator=g)
    hidden = torch.tensor([[True, False, True, False], [False, True, True, True]])
    return pred, target, hidden


def test_missing_targets_zero_counts_missing_s1_as_zero_targets():
    pred, target, hidden = _half_missing_s1()
    zero, zero_count = task_loss("sentinel1", pred, target, hidden, 8, "zero")
    ignore, ignore_count = task_loss("sentinel1", pred, target, hidden, 8, "ignore")
    patches, where = patchify(target, 8), hidden[..., None].expand(-1, -1, 8 * 8 * 8)
    filled = torch.where(torch.isfinite(patches), patches, 0.0)
    assert zero_count == where.sum() == 5 * 512
    assert zero.item() == pytest.approx(((pred - filled)[where] ** 2).mean().item(), rel=1e-5)
    valid = where & torch.isfinite(patches)
    assert ignore_count == valid.sum() < zero_count
    assert ignore.item() == pytest.approx(((pred - patches)[valid] ** 2).mean().item(), rel=1e-5)


def test_missing_targets_zero_fills_sentinel2_before_the_per_patch_statistics():
    g = torch.Generator().manual_seed(1)
    target = torch.randn(1, 12, 8, 8, generator=g)
    target[0, 3] = float("nan")
    pred = torch.randn(1, 1, 8 * 8 * 12, generator=g)
    hidden = torch.ones(1, 1, dtype=torch.bool)
    loss, count = task_loss("sentinel2", pred, target, hidden, 8, "zero")
    expected = normalise_patches(patchify(torch.nan_to_num(target), 8))
    assert count == 8 * 8 * 12
    assert loss.item() == pytest.approx(((pred - expected) ** 2).mean().item(), rel=1e-5)


def test_missing_targets_zero_leaves_image_targets_and_classes_ignored():
    era5 = torch.tensor([[0.5, float("nan"), 1.0]])
    pred = torch.zeros(1, 3)
    for missing in ("ignore", "zero"):
        loss, count = task_loss("era5", pred, era5, torch.ones(1, 1, dtype=torch.bool), 8,
                                missing)
        assert count == 2 and loss.item() == pytest.approx((0.25 + 1.0) / 2)
    classes = torch.full((1, 8, 8), -1)
    classes[0, 0, 0] = 2
    logits = torch.zeros(1, 1, 8 * 8 * 9)
    _, count = task_loss("dynamic_world", logits, classes, torch.ones(1, 1, dtype=torch.bool),
                         8, "zero")
    assert count == 1
