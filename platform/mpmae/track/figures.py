"""The reconstruction figure: what the model sees, hides, and rebuilds, for a few tiles.

One row per tile. Columns: the Sentinel-2 input as RGB, the masked input (hidden patches
grey), the reconstruction (hidden patches from the prediction, visible ones from the input,
as the MAE papers show it), then target and prediction for every other pixel task of the
pretext set, on one colour scale per tile: a value (2–98 % of target and prediction together)
or a class (one fixed palette) has the same colour in both. Missing values and ignored
classes are left blank.

Panels are computed as arrays first (:func:`reconstruction_panels`, testable) and drawn as
one mosaic with a single ``imshow``: a grid of dozens of matplotlib axes would take seconds.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from mpmae.modalities import IGNORE_INDEX, MODALITIES, RGB_BANDS, PretextSet, TaskKind
from mpmae.model.losses import PATCH_NORMALISED_TASKS, denormalise_patches
from mpmae.model.patches import patchify, unpatchify

if TYPE_CHECKING:
    from mpmae.model.mpmae import MPMAEOutput

HIDDEN_GREY = 0.5
STRETCH_PERCENTILES = (2.0, 98.0)
TILE_INCHES = 1.2
HEADER_INCHES = 0.4
GAP_PX = 2
DPI = 100


@dataclass(frozen=True)
class Panel:
    """One column of the figure: a title and an (H, W, 3) RGB image in [0, 1] per tile,
    NaN where nothing is to be shown."""

    title: str
    images: list[np.ndarray]


def reconstruction_figure(batch: dict[str, Tensor], output: MPMAEOutput, pretext: PretextSet,
                          max_tiles: int = 4) -> bytes:
    """A PNG of :func:`reconstruction_panels` (Agg, no pyplot state)."""
    return render_png(reconstruction_panels(batch, output, pretext, max_tiles))


def reconstruction_panels(batch: dict[str, Tensor], output: MPMAEOutput, pretext: PretextSet,
                          max_tiles: int = 4) -> list[Panel]:
    """Panels for the first ``max_tiles`` tiles of a normalised batch and the model's output
    (``mask`` (B, gh, gw) True = hidden, ``predictions`` per task). Tensors may live on any
    device and in any float dtype."""
    panels = _s2_panels(batch, output, pretext, max_tiles)
    for task in pretext.tasks:
        kind = MODALITIES[task].kind
        target, pred = batch[task][:max_tiles], output.predictions[task][:max_tiles]
        if kind is TaskKind.PIXEL_REGRESSION and task != "sentinel2":
            panels += _regression_panels(task, _cpu(target), _cpu(pred))
        elif kind is TaskKind.PIXEL_CLASSES:
            panels += _class_panels(task, target.detach().cpu(), _cpu(pred))
    return panels


def _s2_panels(batch: dict[str, Tensor], output: MPMAEOutput, pretext: PretextSet,
               max_tiles: int) -> list[Panel]:
    """Input, masked input and reconstruction, all with the input's colour stretch."""
    image = _cpu(batch["image"][:max_tiles])
    mask = output.mask[:max_tiles].detach().cpu().bool()
    patch = image.shape[-2] // mask.shape[1]
    hidden = _hidden_pixels(mask, patch)
    rgb = _rgb_indices(pretext)
    low, high = _stretch_limits(image[:, rgb])
    recon = _s2_prediction(output.predictions["sentinel2"][:max_tiles],
                           batch["sentinel2"][:max_tiles], patch)
    recon = torch.where(hidden[:, None], recon, image)
    masked = _to_rgb(image[:, rgb], low, high)
    masked[hidden.numpy()] = HIDDEN_GREY
    return [
        Panel("S2 input", list(_to_rgb(image[:, rgb], low, high))),
        Panel("masked input", list(masked)),
        Panel("S2 reconstruction", list(_to_rgb(recon[:, rgb], low, high))),
    ]


def render_png(panels: list[Panel]) -> bytes:
    """Draw panels as columns of one image, titles on top, blanks white."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    mosaic = _mosaic(panels)
    cols, rows = len(panels), len(panels[0].images)
    height = rows * TILE_INCHES + HEADER_INCHES
    fig = Figure(figsize=(cols * TILE_INCHES, height), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, rows * TILE_INCHES / height))
    ax.imshow(mosaic, interpolation="nearest", aspect="auto")
    ax.set_axis_off()
    for col, panel in enumerate(panels):
        fig.text((col + 0.5) / cols, 1 - 0.5 * HEADER_INCHES / height, panel.title,
                 ha="center", va="center", fontsize=7)
    buffer = io.BytesIO()
    # Fast zlib level: a third of the encoding time for a few percent more bytes.
    fig.savefig(buffer, format="png", dpi=DPI, pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def _mosaic(panels: list[Panel]) -> np.ndarray:
    h, w = panels[0].images[0].shape[:2]
    rows, cols = len(panels[0].images), len(panels)
    out = np.ones((rows * (h + GAP_PX) - GAP_PX, cols * (w + GAP_PX) - GAP_PX, 3))
    for c, panel in enumerate(panels):
        for r, tile in enumerate(panel.images):
            y, x = r * (h + GAP_PX), c * (w + GAP_PX)
            out[y : y + h, x : x + w] = np.nan_to_num(tile, nan=1.0)
    return out


def _cpu(x: Tensor) -> Tensor:
    return x.detach().to("cpu", torch.float32)


def _rgb_indices(pretext: PretextSet) -> list[int]:
    """B4, B3, B2 within the input bands; the first band as grey if they are not all in."""
    bands = pretext.input_bands
    if all(b in bands for b in RGB_BANDS):
        return [bands.index(b) for b in RGB_BANDS]
    return [0, 0, 0]


def _hidden_pixels(mask: Tensor, patch: int) -> Tensor:
    """(B, gh, gw) patch mask → (B, H, W)."""
    return mask.repeat_interleave(patch, 1).repeat_interleave(patch, 2)


def _s2_prediction(pred: Tensor, target: Tensor, patch: int) -> Tensor:
    """The Sentinel-2 prediction in input z-scores. The loss compares against per-patch
    normalised targets, so the head predicts in those units; undo that with each target
    patch's own mean and variance."""
    pred, target = _cpu(pred), _cpu(target)
    if "sentinel2" not in PATCH_NORMALISED_TASKS:
        return pred
    grid = (target.shape[-2] // patch, target.shape[-1] // patch)
    values = denormalise_patches(patchify(pred, patch), patchify(target, patch))
    return unpatchify(values, patch, grid)


def _stretch_limits(rgb: Tensor) -> tuple[Tensor, Tensor]:
    """Per-tile, per-channel 2–98 % limits of the input, applied to every S2 panel alike."""
    flat = rgb.flatten(2)
    q = torch.tensor([p / 100 for p in STRETCH_PERCENTILES])
    low, high = torch.quantile(flat, q, dim=2)
    return low[..., None, None], torch.maximum(high, low + 1e-6)[..., None, None]


def _to_rgb(x: Tensor, low: Tensor, high: Tensor) -> np.ndarray:
    """(B, 3, H, W) → (B, H, W, 3) in [0, 1]; NaN stays NaN (drawn blank)."""
    scaled = ((x - low) / (high - low)).clamp(0, 1)
    scaled = torch.where(torch.isnan(x), torch.nan, scaled)
    return scaled.permute(0, 2, 3, 1).numpy().copy()


def _regression_panels(task: str, target: Tensor, pred: Tensor) -> list[Panel]:
    """The first band of target and prediction, each tile on one colour scale for both."""
    band = MODALITIES[task].bands[0]
    target, pred = target[:, 0], pred[:, 0]
    images = {"target": [], "prediction": []}
    for t, p in zip(target, pred, strict=True):
        low, high = _shared_limits(t, p)
        images["target"].append(_colour(t, low, high))
        images["prediction"].append(_colour(p, low, high))
    return [Panel(f"{task}\n{band} {name}", tiles) for name, tiles in images.items()]


def _shared_limits(target: Tensor, pred: Tensor) -> tuple[float, float]:
    """2–98 % of target and prediction together: limits from the target alone drew a
    prediction just outside its range as a saturated block, however close it was."""
    both = torch.cat([target.flatten(), pred.flatten()])
    finite = both[torch.isfinite(both)]
    if not finite.numel():
        return 0.0, 1.0
    q = torch.tensor([p / 100 for p in STRETCH_PERCENTILES])
    low, high = torch.quantile(finite, q).tolist()
    return low, high


def _colour(x: Tensor, low: float, high: float) -> np.ndarray:
    from matplotlib import colormaps

    scaled = ((x - low) / max(high - low, 1e-6)).clamp(0, 1).numpy()
    rgb = colormaps["viridis"](scaled)[..., :3]
    rgb[~np.isfinite(x.numpy())] = np.nan
    return rgb


def class_palette(n_classes: int) -> np.ndarray:
    """(n_classes, 3) RGB: the one palette of every class map we draw, so a class has one
    colour in a target, a prediction and every figure."""
    from matplotlib import colormaps

    return colormaps["tab20"](np.arange(n_classes) % 20)[:, :3]


def _class_panels(task: str, target: Tensor, logits: Tensor) -> list[Panel]:
    """Target and predicted (argmax) classes in one fixed palette, so a class has the same
    colour in both; IGNORE_INDEX targets blank."""
    palette = class_palette(MODALITIES[task].num_classes)
    target = target.long().numpy()
    shown = palette[np.clip(target, 0, None)]
    shown[target == IGNORE_INDEX] = np.nan
    predicted = palette[logits.argmax(1).numpy()]
    return [Panel(f"{task}\ntarget", list(shown)), Panel(f"{task}\nprediction", list(predicted))]


def figure_png(fig) -> bytes:
    """A matplotlib figure (made without pyplot, so nothing global holds it) as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return buffer.getvalue()
