"""The reconstruction figure: its panels' contents, a valid PNG, and speed."""

from __future__ import annotations

import io
import time
from types import SimpleNamespace

import matplotlib.image
import numpy as np
import pytest
import torch

from mpmae.modalities import IGNORE_INDEX, MODALITIES, PRETEXT_SETS, TaskKind
from mpmae.model.losses import normalise_patches
from mpmae.model.patches import patchify, unpatchify
from mpmae.track.figures import (
    DPI,
    HIDDEN_GREY,
    TILE_INCHES,
    reconstruction_figure,
    reconstruction_panels,
)

PATCH = 8


def fake_step(pretext_name: str, tiles: int = 5, size: int = 16, seed: int = 0):
    """A normalised batch and a model-like output. The Sentinel-2 target is the input and
    its prediction the per-patch normalised target: a perfect reconstruction."""
    pretext = PRETEXT_SETS[pretext_name]
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(tiles, pretext.in_chans, size, size, generator=g)
    batch, predictions = {"image": image, "sentinel2": image.clone()}, {}
    grid = (size // PATCH, size // PATCH)
    perfect = normalise_patches(patchify(image, PATCH))
    predictions["sentinel2"] = unpatchify(perfect, PATCH, grid)
    for task in pretext.tasks[1:]:
        kind, channels = MODALITIES[task].kind, pretext.output_channels(task)
        if kind is TaskKind.PIXEL_REGRESSION:
            batch[task] = torch.randn(tiles, channels, size, size, generator=g)
            predictions[task] = torch.randn(tiles, channels, size, size, generator=g)
        elif kind is TaskKind.PIXEL_CLASSES:
            batch[task] = torch.randint(-1, channels, (tiles, size, size), generator=g)
            predictions[task] = torch.randn(tiles, channels, size, size, generator=g)
        elif kind is TaskKind.IMAGE_CLASS:
            batch[task] = torch.randint(0, channels, (tiles,), generator=g)
            predictions[task] = torch.randn(tiles, channels, generator=g)
        else:
            batch[task] = torch.randn(tiles, channels, generator=g)
            predictions[task] = torch.randn(tiles, channels, generator=g)
    mask = torch.rand(tiles, *grid, generator=g) < 0.5
    return pretext, batch, SimpleNamespace(mask=mask, predictions=predictions)


def titles(panels) -> list[str]:
    return [p.title.replace("\n", " ") for p in panels]


def test_rgb_set_shows_input_mask_and_reconstruction():
    pretext, batch, output = fake_step("rgb")
    panels = reconstruction_panels(batch, output, pretext)
    assert titles(panels) == ["S2 input", "masked input", "S2 reconstruction"]
    assert all(len(p.images) == 4 and p.images[0].shape == (16, 16, 3) for p in panels)


def test_all_set_adds_target_and_prediction_per_pixel_task():
    pretext, batch, output = fake_step("all")
    expected = ["S2 input", "masked input", "S2 reconstruction",
                "sentinel1 asc_VV target", "sentinel1 asc_VV prediction",
                "aster elevation target", "aster elevation prediction",
                "canopy_height_eth height target", "canopy_height_eth height prediction",
                "dynamic_world target", "dynamic_world prediction",
                "esa_worldcover target", "esa_worldcover prediction"]
    assert titles(reconstruction_panels(batch, output, pretext, max_tiles=2)) == expected


@pytest.mark.parametrize("pretext_name", ["rgb", "all"])
def test_a_perfect_prediction_reconstructs_the_input(pretext_name):
    # The head predicts per-patch normalised values: the figure must undo that.
    pretext, batch, output = fake_step(pretext_name)
    source, masked, recon = reconstruction_panels(batch, output, pretext)[:3]
    hidden = output.mask.repeat_interleave(PATCH, 1).repeat_interleave(PATCH, 2)
    for tile in range(4):
        np.testing.assert_allclose(recon.images[tile], source.images[tile], atol=1e-4)
        assert np.all(masked.images[tile][hidden[tile].numpy()] == HIDDEN_GREY)
        visible = ~hidden[tile].numpy()
        assert np.array_equal(masked.images[tile][visible], source.images[tile][visible])


def test_rgb_comes_from_b4_b3_b2_of_the_input():
    pretext, batch, output = fake_step("all")
    bands = pretext.input_bands
    image = torch.zeros_like(batch["image"])
    ramp = torch.linspace(-2, 2, 16)
    image[:, bands.index("B4")] = ramp[None, :]  # red varies along x only
    image[:, bands.index("B2")] = ramp[:, None]  # blue varies along y only
    batch["image"] = batch["sentinel2"] = image
    rgb = reconstruction_panels(batch, output, pretext)[0].images[0]
    assert np.ptp(rgb[..., 0], axis=1).max() > 0.9 and np.ptp(rgb[..., 0], axis=0).max() == 0
    assert np.ptp(rgb[..., 2], axis=0).max() > 0.9 and np.ptp(rgb[..., 2], axis=1).max() == 0
    assert np.ptp(rgb[..., 1]) == 0


def test_class_maps_show_argmax_and_leave_ignored_pixels_blank():
    pretext, batch, output = fake_step("all")
    panels = {p.title: p for p in reconstruction_panels(batch, output, pretext)}
    target = panels["dynamic_world\ntarget"].images[0]
    predicted = panels["dynamic_world\nprediction"].images[0]
    ignored = (batch["dynamic_world"][0] == IGNORE_INDEX).numpy()
    assert ignored.any() and np.isnan(target[ignored]).all()
    assert not np.isnan(target[~ignored]).any() and not np.isnan(predicted).any()
    argmax = output.predictions["dynamic_world"][0].argmax(0).numpy()
    same_class = argmax == argmax[0, 0]
    assert np.all(predicted[same_class] == predicted[0, 0])
    assert not np.all(predicted[~same_class] == predicted[0, 0], axis=-1).any()


def elevation_panels(target: torch.Tensor, prediction: torch.Tensor):
    """The first tile's aster target and prediction panels for these (16, 16) values."""
    pretext, batch, output = fake_step("all")
    batch["aster"][0, 0], output.predictions["aster"][0, 0] = target, prediction
    panels = {p.title: p.images[0] for p in reconstruction_panels(batch, output, pretext)}
    return panels["aster\nelevation target"], panels["aster\nelevation prediction"]


def test_target_and_prediction_share_one_colour_scale():
    # A close prediction over a large range: on the target's scale alone, its top saturated.
    elevation = torch.arange(256.0).reshape(16, 16)
    target, prediction = elevation_panels(elevation, elevation + 8)
    # One scale for the pair, whichever of the two is the target...
    swapped_target, swapped_prediction = elevation_panels(elevation + 8, elevation)
    np.testing.assert_array_equal(target, swapped_prediction)
    np.testing.assert_array_equal(prediction, swapped_target)
    # ...so a value has one colour in both panels: prediction pixel i holds target pixel i+8.
    np.testing.assert_array_equal(prediction.reshape(-1, 3)[:-8], target.reshape(-1, 3)[8:])


def test_a_class_has_one_colour_in_target_and_prediction():
    pretext, batch, output = fake_step("all")
    target = batch["esa_worldcover"]
    classes = MODALITIES["esa_worldcover"].num_classes
    perfect = torch.nn.functional.one_hot(target.clamp(min=0), classes).permute(0, 3, 1, 2)
    output.predictions["esa_worldcover"] = perfect.float()
    panels = {p.title: p for p in reconstruction_panels(batch, output, pretext)}
    shown = panels["esa_worldcover\ntarget"].images
    predicted = panels["esa_worldcover\nprediction"].images
    for tile, (t, p) in enumerate(zip(shown, predicted, strict=True)):
        known = (target[tile] != IGNORE_INDEX).numpy()
        np.testing.assert_array_equal(t[known], p[known])
    colours = {tuple(c) for image in predicted for c in image.reshape(-1, 3)}
    assert len(colours) == len(target[:4].clamp(min=0).unique())


def test_missing_regression_targets_are_blank():
    pretext, batch, output = fake_step("all")
    batch["aster"][0, 0, :4] = torch.nan
    panels = {p.title: p for p in reconstruction_panels(batch, output, pretext)}
    target = panels["aster\nelevation target"].images[0]
    assert np.isnan(target[:4]).all() and not np.isnan(target[4:]).any()


def test_figure_is_a_png_with_one_column_per_panel():
    pretext, batch, output = fake_step("all", tiles=3)
    png = reconstruction_figure(batch, output, pretext)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    pixels = matplotlib.image.imread(io.BytesIO(png))
    assert pixels.shape[1] == round(13 * TILE_INCHES * DPI)
    assert pixels.shape[0] > round(3 * TILE_INCHES * DPI)


def test_low_precision_tensors_that_need_grad_are_fine():
    pretext, batch, output = fake_step("rgb")
    batch = {k: v.bfloat16() for k, v in batch.items()}
    output.predictions = {k: v.bfloat16().requires_grad_() for k, v in output.predictions.items()}
    assert reconstruction_figure(batch, output, pretext).startswith(b"\x89PNG")


def test_four_tiles_of_56px_from_the_real_model_take_under_a_cpu_second():
    from mpmae.model import build_mpmae

    pretext, batch, _ = fake_step("all", tiles=4, size=56)
    model = build_mpmae(size="atto", pretext="all", img_size=56, decoder_dim=32)
    with torch.no_grad():
        output = model(batch, generator=torch.Generator().manual_seed(0))
    reconstruction_figure(batch, output, pretext)  # first call loads matplotlib and fonts
    # CPU time: on a shared 2-core box the wall clock mostly measures the neighbours.
    start = time.process_time()
    png = reconstruction_figure(batch, output, pretext)
    assert time.process_time() - start < 1.0
    assert png.startswith(b"\x89PNG")
