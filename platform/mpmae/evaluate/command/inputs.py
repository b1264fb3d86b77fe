"""A GEO-Bench (v1 or 2) split as the encoder's normalised input: bands matched by name,
normalised (a z-score, or one of GEO-Bench-2's schemes), padded to a multiple of the
encoder's patch size when the native size is not one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from mpmae.data.geobench.bands import BandMatch, input_array
from mpmae.data.geobench.dataset import GeoBenchDataset
from mpmae.data.geobench.errors import GeoBenchError
from mpmae.data.geobench.normalise import InputStats, normalise
from mpmae.data.geobench.task_specs import LabelKind
from mpmae.data.geobench2.schemes import InputSchemes
from mpmae.evaluate.command.geobench2_source import GeoBench2Source

# How inputs are normalised: a z-score per band, or one of GEO-Bench-2's schemes per band.
Normaliser = InputStats | InputSchemes
INTEGER_LABELS = (LabelKind.CLASSIFICATION, LabelKind.SEGMENTATION)


@dataclass(frozen=True)
class SplitInputs:
    """Inputs (N, C, H, W) float32, or (N, T, C, H, W) for a dated series, and labels:
    (N,) int64, (N, K) multi-hot, (N, H, W) classes or float targets. ``dates``: for a
    series, how many of each sample's T dates are real (the rest are zero padding)."""

    x: Tensor
    y: Tensor
    names: tuple[str, ...]
    dates: Tensor | None = None


def load_split(dataset: GeoBenchDataset | GeoBench2Source, names: tuple[str, ...],
               match: BandMatch, stats: Normaliser, patch: int) -> SplitInputs:
    """Read, match, normalise and pad every named sample of the dataset."""
    images, labels = [], []
    for name in names:
        sample = dataset.read_sample(name)
        images.append(normalise_input(_dates_first(input_array(sample.bands, match, name)),
                                      stats))
        labels.append(np.asarray(sample.label))
        if images[-1].shape[-3:] != images[0].shape[-3:]:  # GEO-Bench-2 stores each size
            raise GeoBenchError(f"{dataset.folder}: sample {name} is {images[-1].shape[-2:]}, "
                                f"sample {names[0]} {images[0].shape[-2:]}; mpmae evaluate "
                                "reads every sample of a dataset at one size (no resizing)")
    x, dates = _stack_dates(images)
    x = pad_to_patches(x, patch)
    y = torch.from_numpy(np.stack(labels))
    y = y.long() if dataset.label_kind in INTEGER_LABELS else y.float()
    return SplitInputs(x, y, names, dates)


def _dates_first(inputs: np.ndarray) -> np.ndarray:
    """(C, H, W) as is; a dated series, bands of (T, H, W), from (C, T, H, W) to
    (T, C, H, W): each date one input, normalised per band alike."""
    return np.moveaxis(inputs, 1, 0) if inputs.ndim == 4 else inputs


def _stack_dates(images: list[np.ndarray]) -> tuple[Tensor, Tensor | None]:
    """(N, C, H, W); a dated series (N, T, C, H, W), each sample's dates zero-padded to
    the most any has, and how many are real."""
    if images[0].ndim == 3:
        return torch.from_numpy(np.stack(images)), None
    dates = torch.tensor([len(i) for i in images])
    x = torch.zeros(len(images), int(dates.max()), *images[0].shape[1:])
    for row, image in enumerate(images):
        x[row, : len(image)] = torch.from_numpy(image)
    return x, dates


def normalise_input(inputs: np.ndarray, stats: Normaliser) -> np.ndarray:
    """(…, C, H, W) inputs normalised per band, float32."""
    if isinstance(stats, InputSchemes):
        return stats.apply(inputs)
    return normalise(inputs, stats)


def pad_to_patches(x: Tensor, patch: int) -> Tensor:
    """Zero-pad (the mean, after z-scoring) bottom and right up to a multiple of ``patch``."""
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % patch, -w % patch
    return F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x


def size_note(dataset: GeoBenchDataset, patch: int) -> str:
    """How the dataset's images reach the encoder: native size, or padded to what."""
    h, w = dataset.patch_size[-2:]
    if h % patch == 0 and w % patch == 0:
        return f"native {h}x{w}"
    return f"{h}x{w} zero-padded to {h + -h % patch}x{w + -w % patch} (patch {patch})"
