"""Dated series under a frozen encoder: each real date embedded on its own, the
embeddings (or the segmentation head's stage maps) averaged over that sample's dates;
zero-padded dates are left out."""

from __future__ import annotations

import numpy as np
import torch

from mpmae.data.geobench.normalise import InputStats
from mpmae.evaluate.command.encoders import open_encoder
from mpmae.evaluate.command.inputs import normalise_input
from mpmae.evaluate.protocols.ray_tasks import mean_over_dates
from mpmae.evaluate.protocols.segmentation_head import stage_maps
from mpmae.train.online_probe import embed


def test_a_dated_series_gets_the_mean_of_its_real_dates_features():
    opened = open_encoder("random:atto")
    encoder, c = opened.module.eval(), len(opened.input_bands)
    x = torch.randn(2, 3, c, 32, 32, generator=torch.Generator().manual_seed(0))
    x[1, 2] = 0  # sample 1 has two dates, the third is padding
    dates = torch.tensor([3, 2])
    with torch.no_grad():
        pooled = mean_over_dates(lambda b: [embed(encoder, b)], x, dates)[0]
        first = torch.stack([embed(encoder, x[:1, t]) for t in range(3)]).mean(0)
        second = torch.stack([embed(encoder, x[1:, t]) for t in range(2)]).mean(0)
        torch.testing.assert_close(pooled, torch.cat([first, second]), rtol=1e-4, atol=1e-4)
        maps = mean_over_dates(lambda b: stage_maps(encoder, b), x, dates)
        for stage, one_date in zip(maps, stage_maps(encoder, x[:, 0]), strict=True):
            assert stage.shape == one_date.shape and stage.dtype == one_date.dtype
        # (N, C, H, W): one date, the features as they are
        torch.testing.assert_close(mean_over_dates(lambda b: [embed(encoder, b)], x[:, 0])[0],
                                   embed(encoder, x[:, 0]))


def test_each_date_is_normalised_per_band_alike():
    stats = InputStats(np.array([1.0, 10.0], np.float32), np.array([2.0, 5.0], np.float32))
    dated = np.stack([np.full((2, 4, 4), t, np.float32) for t in range(3)])  # (T, C, H, W)
    out = normalise_input(dated, stats)
    for t in range(3):
        np.testing.assert_allclose(out[t], normalise_input(dated[t], stats))
