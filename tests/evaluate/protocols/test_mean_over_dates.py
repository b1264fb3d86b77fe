"""Dated series under a frozen encoder: each date embedded on its own, the embeddings (or
the segmentation head's stage maps) averaged over the dates."""

from __future__ import annotations

import numpy as np
import torch

from mpmae.data.geobench.normalise import InputStats
from mpmae.evaluate.command.encoders import open_encoder
from mpmae.evaluate.command.inputs import normalise_input
from mpmae.evaluate.protocols.ray_tasks import mean_over_dates
from mpmae.evaluate.protocols.segmentation_head import stage_maps
from mpmae.train.online_probe import embed


def test_a_dated_series_gets_the_mean_of_its_per_date_features():
    opened = open_encoder("random:atto")
    encoder, c = opened.module.eval(), len(opened.input_bands)
    x = torch.randn(2, 3, c, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pooled = mean_over_dates(lambda b: [embed(encoder, b)], x)[0]
        by_hand = torch.stack([embed(encoder, x[:, t]) for t in range(3)]).mean(0)
        torch.testing.assert_close(pooled, by_hand, rtol=1e-5, atol=1e-5)
        maps = mean_over_dates(lambda b: stage_maps(encoder, b), x)
        for stage, one_date in zip(maps, stage_maps(encoder, x[:, 0]), strict=True):
            assert stage.shape == one_date.shape  # (N, …): the dates averaged away
        # one date: the features as they are
        torch.testing.assert_close(mean_over_dates(lambda b: [embed(encoder, b)], x[:, 0])[0],
                                   embed(encoder, x[:, 0]))


def test_each_date_is_normalised_per_band_alike():
    stats = InputStats(np.array([1.0, 10.0], np.float32), np.array([2.0, 5.0], np.float32))
    dated = np.stack([np.full((2, 4, 4), t, np.float32) for t in range(3)])  # (T, C, H, W)
    out = normalise_input(dated, stats)
    for t in range(3):
        np.testing.assert_allclose(out[t], normalise_input(dated[t], stats))
