"""The segmentation fine-tune's prediction figure: per test sample, the input as RGB
(B4, B3, B2; 2–98 % stretch per sample), the target and the prediction in one palette.
Drawn with pretraining's panel mosaic (:func:`mpmae.track.figures.render_png`)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mpmae.modalities import RGB_BANDS
from mpmae.track.figures import Panel, class_palette, render_png

STRETCH = torch.tensor([0.02, 0.98])


def prediction_figure(x: Tensor, target: Tensor, predicted: Tensor,
                      input_bands: tuple[str, ...], n_classes: int) -> bytes:
    """PNG for inputs ``x`` (N, C, H', W', maybe padded), ``target`` and ``predicted``
    class maps (N, H, W); the input is cropped to the maps' size."""
    h, w = target.shape[-2:]
    palette = class_palette(n_classes)
    return render_png([
        Panel("input RGB", [_rgb(image[..., :h, :w], input_bands) for image in x]),
        Panel("target", list(palette[target.numpy()])),
        Panel("prediction", list(palette[predicted.numpy()])),
    ])


def _rgb(image: Tensor, input_bands: tuple[str, ...]) -> np.ndarray:
    """(C, H, W) → (H, W, 3) in [0, 1]; the first band as grey without all of B4, B3, B2."""
    rgb = [input_bands.index(b) for b in RGB_BANDS] if set(RGB_BANDS) <= set(input_bands) \
        else [0, 0, 0]
    bands = image[rgb].float()
    low, high = torch.quantile(bands.flatten(1), STRETCH, dim=1)[..., None, None]
    scaled = ((bands - low) / torch.maximum(high - low, torch.tensor(1e-6))).clamp(0, 1)
    return scaled.permute(1, 2, 0).numpy()
