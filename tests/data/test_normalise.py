import math

import numpy as np
import torch

from mpmae.data.stream.normalise import S2_LEVEL_COLUMN, Normaliser
from mpmae.modalities import IGNORE_INDEX, resolve_pretext


def _stats():
    s2 = lambda m: {"mean": [m] * 13, "std": [2.0] * 13}  # noqa: E731
    return {
        "sentinel2_l1c": s2(100.0), "sentinel2_l2a": s2(50.0),
        "sentinel1": {"mean": [-10.0] * 8, "std": [5.0] * 8},
        "era5": {"mean": [1.0] * 12, "std": [2.0] * 12},
    }


def _raw(n=2, size=4):
    s2 = torch.full((n, 13, size, size), 104, dtype=torch.uint16)
    s2[0, :, 0, 0] = 0  # no data
    s1 = torch.full((n, 8, size, size), -5.0)
    s1[:, 2:4] = float("nan")
    s1[1, 4] = float("-inf")
    return {
        "sentinel2": s2, S2_LEVEL_COLUMN: torch.tensor([False, True]),
        "sentinel1": s1,
        "dynamic_world": torch.tensor([0, 1, 9, 3], dtype=torch.uint8).repeat(n * size, 1)
        .view(n, 1, size, size),
        "esa_worldcover": torch.full((n, 1, size, size), 95, dtype=torch.uint8),
        "era5": torch.tensor([[3.0] * 12, [float("nan")] * 12]),
        "biome": torch.tensor([13, 255], dtype=torch.uint8),
    }


def test_hand_computed_normalisation():
    pretext = resolve_pretext(["sentinel2", "sentinel1", "dynamic_world", "esa_worldcover",
                               "era5", "biome"])
    out = Normaliser(_stats(), pretext).eval()(_raw())
    # S2: (104 - 100) / 2 for L1C, (104 - 50) / 2 for L2A; no-data → NaN target, 0 input.
    assert out["image"].shape == (2, 12, 4, 4)
    assert out["sentinel2"][0, 0, 1, 1] == 2.0 and out["sentinel2"][1, 0, 1, 1] == 27.0
    assert torch.isnan(out["sentinel2"][0, :, 0, 0]).all() and (out["image"][0, :, 0, 0] == 0).all()
    assert out["sentinel1"][0, 0, 0, 0] == 1.0
    assert torch.isnan(out["sentinel1"][:, 2:4]).all() and torch.isnan(out["sentinel1"][1, 4]).all()
    assert out["dynamic_world"].shape == (2, 4, 4)
    assert out["dynamic_world"][0, 0].tolist() == [IGNORE_INDEX, 0, 8, 2]
    assert (out["esa_worldcover"] == 9).all()
    assert out["era5"][0, 0] == 1.0 and torch.isnan(out["era5"][1]).all()
    assert out["biome"].tolist() == [13, IGNORE_INDEX]


def test_rgb_set_feeds_three_bands_in_b4_b3_b2_order():
    raw = _raw()
    for band in range(13):
        raw["sentinel2"][:, band] = 100 + 2 * band
    out = Normaliser(_stats(), resolve_pretext("rgb")).eval()(raw)
    assert out["image"].shape[1] == 3
    assert out["image"][0, :, 1, 1].tolist() == [3.0, 2.0, 1.0]  # B4, B3, B2 of L1C


def test_random_crop_takes_one_window_shared_by_all_pixel_modalities():
    n, size, crop = 8, 16, 10
    yy, xx = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    code = torch.tensor(yy * size + xx, dtype=torch.int64)  # each pixel knows where it was
    raw = {
        "sentinel2": (code + 1).to(torch.uint16).expand(n, 13, size, size).clone(),
        S2_LEVEL_COLUMN: torch.zeros(n, dtype=torch.bool),
        "sentinel1": code.float().expand(n, 8, size, size).clone(),
    }
    stats = {"sentinel2_l1c": {"mean": [0.0] * 13, "std": [1.0] * 13},
             "sentinel2_l2a": {"mean": [0.0] * 13, "std": [1.0] * 13},
             "sentinel1": {"mean": [0.0] * 8, "std": [1.0] * 8}}
    norm = Normaliser(stats, resolve_pretext(["sentinel2", "sentinel1"]), crop=crop).train()
    out = norm(raw, generator=torch.Generator().manual_seed(0))
    assert out["sentinel1"].shape == (n, 8, crop, crop)
    assert torch.equal(out["sentinel2"][:, 0] - 1, out["sentinel1"][:, 0])  # same window
    corners = out["sentinel1"][:, 0, 0, 0]
    assert len(set(corners.tolist())) > 1  # windows differ between tiles
    rows, cols = corners // size, corners % size
    assert torch.equal(out["sentinel1"][:, 0, -1, -1], (rows + crop - 1) * size + cols + crop - 1)
    centre = norm.eval()(raw)["sentinel1"][:, 0, 0, 0]
    assert (centre == 3 * size + 3).all()


def test_statistics_follow_the_module_to_the_device():
    norm = Normaliser(_stats(), resolve_pretext("S2"))
    assert {n for n, _ in norm.named_buffers()} >= {"s2_mean", "s2_std"}
    assert math.isclose(float(norm.s2_std[1, 0]), 2.0)
