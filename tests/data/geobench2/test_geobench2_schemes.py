"""GEO-Bench-2's two normalisation schemes on tiny arrays, against values worked by hand,
read from statistics files written here in the benchmark's layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mpmae.data.geobench2.catalog import dataset_info
from mpmae.data.geobench2.errors import GeoBench2Error
from mpmae.data.geobench2.schemes import ClipRescaleBand, SatmaeBand, normalise, read_scheme
from mpmae.data.geobench2.stats import stats_file

BENV2 = dataset_info("benv2")


def close(actual: np.ndarray, expected: list[float]) -> None:
    assert actual.dtype == np.float32
    np.testing.assert_allclose(actual, expected, rtol=2e-6, atol=2e-7)


def test_satmae_clips_to_two_stds_and_rescales() -> None:
    band = SatmaeBand(mean=100, std=50, offset=0, norm_mean=0.4, norm_std=0.2)
    x = np.array([-10, 0, 50, 150, 300])  # the window is [0, 200]
    close(band.apply(x), [0, 0, 0.25, 0.75, 1])
    close(band.apply(x, output_range="neg_one_one"), [-1, -1, -0.5, 0.5, 1])
    close(band.apply(x, output_range="zero_255"), [0, 0, 63.75, 191.25, 255])
    close(band.apply(x, second_stage=True),
          [(v - 0.4) / (0.2 + 1e-6) for v in (0, 0, 0.25, 0.75, 1)])


def test_satmae_window_below_zero_is_shifted_and_the_shift_cancels() -> None:
    # window [-20, 0]: the benchmark lifts it by the file's offset, which cancels out
    for offset in (66.5, 20.0):
        band = SatmaeBand(mean=-10, std=5, offset=offset, norm_mean=0, norm_std=1)
        close(band.apply(np.array([-25, -20, -15, -5, 3])), [0, 0, 0.25, 0.75, 1])


def test_clip_rescale_clips_shifts_rescales_then_z_scores() -> None:
    s1 = ClipRescaleBand(clip_min=-50, clip_max=100, norm_mean=0.2, norm_std=0.04)
    # clipped [-50, -50, 25, 100, 100] → +50 → /150 → [0, 0, .5, 1, 1]
    close(s1.apply(np.array([-80, -50, 25, 100, 200])),
          [(v - 0.2) / (0.04 + 1e-6) for v in (0, 0, 0.5, 1, 1)])
    s2 = ClipRescaleBand(clip_min=0, clip_max=3000, norm_mean=0.1, norm_std=0.1)
    close(s2.apply(np.array([0, 1500, 9000])), [(v - 0.1) / (0.1 + 1e-6) for v in (0, 0.5, 1)])


def _block(bands: list[str], **extra: object) -> dict[str, object]:
    n = len(bands)
    return {"band_names": bands, "mean": [100.0] * n, "std": [50.0] * n,
            "norm_mean": [0.5] * n, "norm_std": [0.25] * n, **extra}


def _write(root: Path, scheme: str, blocks: dict[str, object]) -> Path:
    path = stats_file(root, scheme, "benv2")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"input_stats": blocks, "target_stats": {}}))
    return path


def test_read_schemes_from_the_benchmarks_files(tmp_path: Path) -> None:
    s2, s1 = list(BENV2.modalities[1].bands), ["VV", "VH"]
    satmae = read_scheme(_write(tmp_path, "satmae", {
        "image_s2": _block(s2, shift_offsets=[0.0] * 12),
        "image_s1": _block(s1, mean=[-10.0, -10.0], std=[5.0, 5.0])}), BENV2, "satmae")
    assert satmae["B04"] == SatmaeBand(100, 50, 0, 0.5, 0.25)
    assert satmae["VV"] == SatmaeBand(-10, 5, 20, 0.5, 0.25)  # no shift_offsets: -(−10 − 10)
    clip = read_scheme(_write(tmp_path, "clip_rescale", {
        "image_s2": _block(s2, clip_min_used=0, clip_max_used=3000),
        "image_s1": _block(s1, clip_min_used=-50, clip_max_used=100)}), BENV2, "clip_rescale")
    assert clip["VH"] == ClipRescaleBand(-50, 100, 0.5, 0.25)
    image = np.stack([np.full((2, 2), 1500.0), np.full((2, 2), 3000.0)])
    close(normalise(image, ["B02", "B03"], clip).reshape(2, -1)[:, 0], [0, 0.5 / (0.25 + 1e-6)])
    close(normalise(image, ["B02", "B03"], satmae).reshape(2, -1)[:, 0], [1, 1])
    with pytest.raises(ValueError, match="does not hold 3 bands"):
        normalise(image, ["B02", "B03", "B04"], clip)


def test_bad_statistics_are_one_line_naming_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "clip_rescale", {"image_s2": _block(["B02"])})
    with pytest.raises(GeoBench2Error) as info:
        read_scheme(path, BENV2, "clip_rescale")  # no clip_min_used: not that scheme's file
    assert str(path) in str(info.value) and "clip_min_used" in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(GeoBench2Error, match="'zscore' is not"):
        read_scheme(path, BENV2, "zscore")
    clip = read_scheme(_write(tmp_path / "ok", "clip_rescale", {
        "image_s2": _block(["B02"], clip_min_used=0, clip_max_used=1)}), BENV2, "clip_rescale")
    with pytest.raises(GeoBench2Error, match=r"no normalisation statistics for bands \['B03'\]"):
        normalise(np.zeros((1, 2, 2)), ["B03"], clip)
