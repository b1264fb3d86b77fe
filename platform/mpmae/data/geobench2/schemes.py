"""GEO-Bench-2's two normalisation schemes, applied to a band as the benchmark applies them.

Each statistics file (``stats.stats_file``) belongs to one normaliser of
``geobench_v2/datasets/normalization.py`` (The-AI-Alliance/GEO-Bench-2 at ef78db1), which
computes in float32 as we do here:

- ``satmae`` → ``SatMAENormalizer`` (SatMAE/SeCo): the window ``mean ± 2 std`` of the raw
  band, ``x' = clamp((x + offset - (mean - 2 std + offset)) / (4 std + 1e-6), 0, 1)``, where
  ``offset`` is the file's ``shift_offsets`` (else ``-(mean - 2 std)`` when that is negative,
  else 0; it cancels but for rounding). Its defaults: output in [0, 1], no second stage.
  ``output_range`` ``neg_one_one`` maps to ``2 x' - 1``, ``zero_255`` to ``255 x'``;
  ``second_stage`` z-scores ``x'`` by the file's ``norm_mean``/``norm_std`` (+1e-6) and
  keeps [0, 1] (the benchmark ignores ``output_range`` then).
- ``clip_rescale`` → ``ClipZScoreNormalizer``: clip to the modality's
  ``[clip_min_used, clip_max_used]``, add ``shift = -clip_min`` when ``clip_min < 0``,
  divide by ``scale = (clip_max + shift) - max(clip_min + shift, 0)`` (at least 1e-6),
  clamp to [0, 1], then z-score by the file's ``norm_mean``/``norm_std`` (+1e-6), the
  statistics of the rescaled training data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mpmae.data.geobench.bands import BandMatch
from mpmae.data.geobench2.catalog import DatasetInfo
from mpmae.data.geobench2.errors import GeoBench2Error
from mpmae.data.geobench2.stats import modality_blocks

_EPS = np.float32(1e-6)
OUTPUT_RANGES = {"zero_one": (1.0, 0.0), "zero_255": (255.0, 0.0), "neg_one_one": (2.0, -1.0)}


@dataclass(frozen=True)
class SatmaeBand:
    mean: float
    std: float
    offset: float  # the file's shift_offsets: makes the window non-negative
    norm_mean: float  # of the [0, 1] output over the training split: the second stage
    norm_std: float

    def apply(self, x: np.ndarray, *, output_range: str = "zero_one",
              second_stage: bool = False) -> np.ndarray:
        if output_range not in OUTPUT_RANGES:
            raise ValueError(f"output_range {output_range!r} is not one of "
                             f"{list(OUTPUT_RANGES)}")
        mean, std, offset = (np.float32(v) for v in (self.mean, self.std, self.offset))
        low = mean - np.float32(2) * std + offset
        high = mean + np.float32(2) * std + offset
        out = np.clip((_f32(x) + offset - low) / (high - low + _EPS), 0, 1)
        if second_stage:
            return (out - np.float32(self.norm_mean)) / (np.float32(self.norm_std) + _EPS)
        scale, shift = OUTPUT_RANGES[output_range]
        return out if output_range == "zero_one" else out * np.float32(scale) + np.float32(shift)


@dataclass(frozen=True)
class ClipRescaleBand:
    clip_min: float
    clip_max: float
    norm_mean: float  # of the clipped, rescaled band over the training split
    norm_std: float

    def apply(self, x: np.ndarray) -> np.ndarray:
        low, high = np.float32(self.clip_min), np.float32(self.clip_max)
        shift = -low if low < 0 else np.float32(0)
        scale = max((high + shift) - max(low + shift, np.float32(0)), _EPS)
        rescaled = np.clip((np.clip(_f32(x), low, high) + shift) / scale, 0, 1)
        return (rescaled - np.float32(self.norm_mean)) / (np.float32(self.norm_std) + _EPS)


BandScheme = SatmaeBand | ClipRescaleBand


def read_scheme(path: Path, info: DatasetInfo, scheme: str) -> dict[str, BandScheme]:
    """Band name → what ``scheme`` does to it, from ``info``'s statistics file ``path``."""
    if scheme not in ("satmae", "clip_rescale"):
        raise GeoBench2Error(f"normalisation scheme {scheme!r} is not 'satmae' or "
                             "'clip_rescale'")
    read = _satmae if scheme == "satmae" else _clip_rescale
    found: dict[str, BandScheme] = {}
    for key, block in modality_blocks(path, info).items():
        try:
            found.update(read(block))
        except (TypeError, KeyError, ValueError, IndexError):
            raise GeoBench2Error(f"{path}: image_{key} lacks the {scheme} fields (band_names, "
                                 "mean, std, norm_mean, norm_std"
                                 f"{', clip_min_used, clip_max_used' * (scheme != 'satmae')}"
                                 f"); is it the {scheme} file?") from None
    return found


def normalise(image: np.ndarray, bands: Sequence[str],
              schemes: Mapping[str, BandScheme]) -> np.ndarray:
    """``image`` (…, C, H, W) with band ``bands[c]`` in channel ``c``, each normalised by its
    scheme (SatMAE with the benchmark's defaults)."""
    if image.ndim < 3 or image.shape[-3] != len(bands):
        raise ValueError(f"image of shape {image.shape} does not hold {len(bands)} bands "
                         "in its third-last axis")
    missing = [b for b in bands if b not in schemes]
    if missing:
        raise GeoBench2Error(f"no normalisation statistics for bands {missing}")
    return np.stack([schemes[b].apply(image[..., c, :, :]) for c, b in enumerate(bands)],
                    axis=-3)


@dataclass(frozen=True)
class InputSchemes:
    """Per input band of a band match, in the encoder's order, the scheme that normalises
    it (a filled band takes its source band's: its values are that band's)."""

    bands: tuple[BandScheme, ...]

    def apply(self, inputs: np.ndarray) -> np.ndarray:
        """(C, H, W) or (B, C, H, W) inputs, each band by its scheme, float32."""
        if inputs.ndim < 3 or inputs.shape[-3] != len(self.bands):
            raise ValueError(f"inputs of shape {inputs.shape} do not hold {len(self.bands)} "
                             "bands in their third-last axis")
        return np.stack([scheme.apply(inputs[..., c, :, :])
                         for c, scheme in enumerate(self.bands)], axis=-3)


def input_schemes(match: BandMatch, schemes: Mapping[str, BandScheme],
                  path: Path) -> InputSchemes:
    """The scheme of each of ``match``'s input bands, read from ``path``."""
    missing = sorted({s for s in match.sources if s not in schemes})
    if missing:
        raise GeoBench2Error(f"{path}: no statistics for {match.dataset}'s bands {missing}; "
                             "is it this dataset's file?")
    return InputSchemes(tuple(schemes[s] for s in match.sources))


def _f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _satmae(block: dict[str, Any]) -> dict[str, BandScheme]:
    names, means, stds = block["band_names"], block["mean"], block["std"]
    offsets = block.get("shift_offsets") or [None] * len(names)
    found: dict[str, BandScheme] = {}
    for i, name in enumerate(names):
        mean, std = float(means[i]), float(stds[i])
        offset = offsets[i]
        if offset is None:  # the benchmark's fallback: lift a negative window to 0
            offset = max(0.0, -(mean - 2 * std))
        found[str(name)] = SatmaeBand(mean, std, float(offset), float(block["norm_mean"][i]),
                                      float(block["norm_std"][i]))
    return found


def _clip_rescale(block: dict[str, Any]) -> dict[str, BandScheme]:
    low, high = float(block["clip_min_used"]), float(block["clip_max_used"])
    return {str(name): ClipRescaleBand(low, high, float(block["norm_mean"][i]),
                                       float(block["norm_std"][i]))
            for i, name in enumerate(block["band_names"])}
