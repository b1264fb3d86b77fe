"""Raw tiles → the model's normalised batch, on the training device.

Tiles travel in their stored dtypes (half the bytes of float32) and are normalised here,
after they reach the GPU or CPU that trains on them. Order matters: no-data is masked
*before* z-scoring, so a Sentinel-2 zero is "missing", never a very dark pixel.
"""

from __future__ import annotations

import torch
from torch import nn

from mpmae.data.format.band_stats import stats_key
from mpmae.data.format.manifest import DatasetError
from mpmae.modalities import (
    MODALITIES,
    S2_LEVELS,
    PretextSet,
    TaskKind,
    band_indices,
)

S2_LEVEL_COLUMN = "s2_l2a"  # added by the collate step: True where the tile is L2A


class Normaliser(nn.Module):
    """Holds the band statistics as buffers so they move with ``.to(device)``.

    ``crop``: output tile size; training takes one random window per tile, shared by every
    pixel modality of that tile; evaluation takes the centre window.
    """

    def __init__(self, stats: dict, pretext: PretextSet, crop: int | None = None) -> None:
        super().__init__()
        self.pretext = pretext
        self.crop = crop
        self.register_buffer("input_index", torch.tensor(band_indices(pretext.input_bands)),
                             persistent=False)
        s2 = [_stat_tensors(stats, stats_key("sentinel2", lvl), "sentinel2") for lvl in S2_LEVELS]
        self.register_buffer("s2_mean", torch.stack([m for m, _ in s2]))  # (level, band)
        self.register_buffer("s2_std", torch.stack([s for _, s in s2]))
        for task in pretext.tasks:
            m = MODALITIES[task]
            if task == "sentinel2":
                continue
            if m.kind.is_classification:
                lut = torch.tensor(m.class_lookup())
                self.register_buffer(f"lut_{task}", lut, persistent=False)
            else:
                mean, std = _stat_tensors(stats, task, task)
                self.register_buffer(f"mean_{task}", mean)
                self.register_buffer(f"std_{task}", std)

    def forward(self, raw: dict[str, torch.Tensor],
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        raw = self._cropped(raw, generator)
        image, s2 = self._sentinel2(raw["sentinel2"], raw[S2_LEVEL_COLUMN])
        out = {"image": image}
        for task in self.pretext.tasks:
            out[task] = s2 if task == "sentinel2" else self._target(task, raw[task])
        return out

    def _sentinel2(self, values: torch.Tensor,
                   l2a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder input (no-data → 0) and the reconstruction target (no-data → NaN)."""
        x = values.index_select(1, self.input_index)
        level = l2a.long()
        mean, std = (s[:, self.input_index][level, :, None, None]
                     for s in (self.s2_mean, self.s2_std))
        z = _zscore(x, mean, std)
        target = z.masked_fill_(x == MODALITIES["sentinel2"].nodata, float("nan"))
        # One pass; S2 values are integers, so every NaN of the target is a no-data pixel.
        return target.nan_to_num(nan=0.0), target

    def _target(self, task: str, values: torch.Tensor) -> torch.Tensor:
        m = MODALITIES[task]
        if m.kind.is_classification:
            lut = getattr(self, f"lut_{task}")
            classes = lut[values.long()]
            return classes[:, 0] if m.kind is TaskKind.PIXEL_CLASSES else classes
        shape = (1, -1, 1, 1) if m.kind.is_pixel else (1, -1)
        z = _zscore(values, getattr(self, f"mean_{task}").view(shape),
                    getattr(self, f"std_{task}").view(shape))
        if m.nodata is not None:
            z.masked_fill_(values == m.nodata, float("nan"))
        if values.is_floating_point():  # ±inf in the source is missing too
            z.nan_to_num_(nan=float("nan"), posinf=float("nan"), neginf=float("nan"))
        return z

    def _cropped(self, raw: dict[str, torch.Tensor], generator) -> dict[str, torch.Tensor]:
        size = raw["sentinel2"].shape[-1]
        if self.crop is None or self.crop == size:
            return raw
        if self.crop > size:
            raise DatasetError(f"the {self.crop}px input crop is larger than the dataset's "
                               f"{size}px tiles: use an input size of at most {size}px")
        n = raw["sentinel2"].shape[0]
        if self.training:
            top, left = torch.randint(0, size - self.crop + 1, (2, n), generator=generator)
        else:
            top = left = torch.full((n,), (size - self.crop) // 2)
        corners = list(zip(top.tolist(), left.tolist(), strict=True))
        return {k: _window(v, corners, self.crop) if v.dim() == 4 else v
                for k, v in raw.items()}


def _window(x: torch.Tensor, corners: list[tuple[int, int]], size: int) -> torch.Tensor:
    """Per-sample crop of (N, C, H, W): one slice per sample, stacked in one copy (a
    gather over index grids is much slower on CPU)."""
    return torch.stack([x[i, :, t : t + size, c : c + size]
                        for i, (t, c) in enumerate(corners)])


def _zscore(values: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(values − mean) / std on a fresh float32 tensor, in place after the one copy: on CPU
    this is faster than a broadcast ``addcmul`` (measured: docs/ray-2.60.md)."""
    return values.to(torch.float32, copy=True).sub_(mean).div_(std)


def _stat_tensors(stats: dict, key: str, modality: str) -> tuple[torch.Tensor, torch.Tensor]:
    if key not in stats:
        raise DatasetError(
            f"dataset.json has no band statistics '{key}' needed for {modality}; "
            "re-create the dataset or add the statistics"
        )
    mean = torch.tensor(stats[key]["mean"], dtype=torch.float32)
    std = torch.tensor(stats[key]["std"], dtype=torch.float32).clamp_min(1e-6)
    return mean, std

