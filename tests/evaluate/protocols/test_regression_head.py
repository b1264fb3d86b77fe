"""The frozen pixel-regression head (BioMassters): the segmentation head with one output
and MSE, scored by RMSE over every test pixel with a bootstrap interval."""

from __future__ import annotations

from dataclasses import replace

import torch

from mpmae.evaluate.config import EvaluateConfig
from mpmae.evaluate.protocols.frozen import protocol_score
from mpmae.evaluate.protocols.metrics import score, squared_error_counts


def test_rmse_is_over_every_pixel_of_the_test_samples():
    outputs = torch.zeros(2, 1, 2, 2)
    target = torch.tensor([[[1.0, 1.0], [1.0, 1.0]], [[3.0, 3.0], [3.0, 3.0]]])
    scored = score("rmse", squared_error_counts(outputs, target))
    assert abs(scored.value - 5 ** 0.5) < 1e-9  # sqrt((4 * 1 + 4 * 9) / 8)
    assert 1.0 <= scored.ci95[0] <= scored.ci95[1] <= 3.0


def test_the_head_learns_a_target_its_stage_maps_tell():
    gen = torch.Generator().manual_seed(0)
    maps = [torch.randn(48, 8, 4, 4, generator=gen), torch.randn(48, 16, 2, 2, generator=gen)]
    # the target: the first channel of the first map, upsampled to 8x8
    target = torch.nn.functional.interpolate(maps[0][:, :1], size=(8, 8))[:, 0] + 2.0
    train, test = ([m[:32] for m in maps], target[:32]), ([m[32:] for m in maps], target[32:])
    cfg = EvaluateConfig(protocol="linear")  # the head's recipe: 30 epochs, lr 1e-3
    cfg = replace(cfg, segmentation=replace(cfg.segmentation, batch_size=4, lr=1e-2))
    scored = protocol_score(cfg, "regression", train, test, 1, 0, (8, 8))
    baseline = score("rmse", squared_error_counts(torch.zeros(16, 1, 8, 8), test[1])).value
    assert scored.score.metric == "rmse" and scored.details["steps"] == 30 * 8
    assert scored.score.value < 0.5 * baseline  # predicting 0 everywhere scores ~2.2
