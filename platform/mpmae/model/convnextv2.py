"""The ConvNeXt V2 encoder: a registry of sizes, one builder, dense and sparse-masked paths.

Without a mask the encoder is an ordinary ConvNeXt V2 (downstream use). With a patch mask
it runs the sparse path: only the visible patches are computed, packed into a tensor of
static shape, which equals a submanifold sparse network (tested against the dense-masked
reference in ``dense_reference.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mpmae.model.blocks import Stage, layer_norm
from mpmae.model.masking import PatchMask
from mpmae.model.packing import PackedLayout
from mpmae.model.stems import STAGE0_CELLS_PER_PATCH, STEMS


@dataclass(frozen=True)
class EncoderSize:
    """Depths and widths of the four stages. ``timm_conv_mlp``: timm stores this size's MLP
    as 1×1 convs (4-D weights) rather than Linear layers."""

    depths: tuple[int, int, int, int]
    dims: tuple[int, int, int, int]
    timm_conv_mlp: bool


# The registry of sizes, keyed by the config's choices (choices.MODEL_SIZES).
ENCODER_SIZES: dict[str, EncoderSize] = {
    "atto": EncoderSize((2, 2, 6, 2), (40, 80, 160, 320), timm_conv_mlp=True),
    "femto": EncoderSize((2, 2, 6, 2), (48, 96, 192, 384), timm_conv_mlp=True),
    "pico": EncoderSize((2, 2, 6, 2), (64, 128, 256, 512), timm_conv_mlp=True),
    "nano": EncoderSize((2, 2, 8, 2), (80, 160, 320, 640), timm_conv_mlp=True),
    "tiny": EncoderSize((3, 3, 9, 3), (96, 192, 384, 768), timm_conv_mlp=False),
}


@dataclass(frozen=True)
class EncoderConfig:
    """Everything needed to rebuild an encoder (saved in a release's ``config.json``)."""

    size: str = "atto"
    in_chans: int = 12
    patch_size: int = 8
    stem: str = "mmearth"
    drop_path_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.size not in ENCODER_SIZES:
            raise ValueError(
                f"unknown encoder size {self.size!r}; choose from {list(ENCODER_SIZES)}"
            )
        if self.stem not in STEMS:
            raise ValueError(f"unknown stem {self.stem!r}; choose from {list(STEMS)}")
        if self.patch_size < 8 or self.patch_size % 8:
            raise ValueError(
                f"patch_size must be a multiple of 8 (8, 16, 32…), got {self.patch_size}"
            )


class ConvNeXtV2Encoder(nn.Module):
    """ConvNeXt V2 with a patch-aligned stem; total stride = ``patch_size``."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        spec = ENCODER_SIZES[config.size]
        self.dims = spec.dims
        self.num_features = spec.dims[-1]
        self.stem = STEMS[config.stem](config.in_chans, spec.dims[0], config.patch_size)
        rates = torch.linspace(0, config.drop_path_rate, sum(spec.depths)).tolist()
        self.stages = nn.ModuleList()
        for i, depth in enumerate(spec.depths):
            start = sum(spec.depths[:i])
            in_dim = spec.dims[max(i - 1, 0)]
            drop_paths = rates[start : start + depth]
            self.stages.append(Stage(in_dim, spec.dims[i], drop_paths, downsample=i > 0))
        self.norm = layer_norm(self.num_features)  # for the pooled embedding (timm head.norm)
        self.apply(init_weights)

    @property
    def patch_size(self) -> int:
        return self.config.patch_size

    def patch_mask(self, x: Tensor, mask: Tensor | PatchMask) -> PatchMask:
        """Check an image against a mask (bool (B, gh, gw), True = hidden, or a PatchMask)."""
        p = self.patch_size
        if x.shape[-2] % p or x.shape[-1] % p:
            raise ValueError(f"input size {tuple(x.shape[-2:])} is not a multiple of patch {p}")
        mask = mask if isinstance(mask, PatchMask) else PatchMask.from_hidden(mask)
        if mask.grid != (x.shape[-2] // p, x.shape[-1] // p):
            raise ValueError(f"mask grid {mask.grid} does not match input {tuple(x.shape)}")
        return mask

    def forward_dense(self, x: Tensor, mask: Tensor | PatchMask | None = None) -> list[Tensor]:
        """Per-stage channels-last maps (B, H, W, C) by dense convs; masked if ``mask`` given.

        With a mask this is the dense-masked reference (slow; for tests and benchmarks).
        """
        visible = [None] * 5
        if mask is not None:
            mask = self.patch_mask(x, mask)
            cells = [self.patch_size] + [STAGE0_CELLS_PER_PATCH >> i for i in range(4)]
            visible = [mask.visible(r).to(x.dtype) for r in cells]
        y = self.stem(x, visible[0], visible[1])
        features = []
        for stage, vis in zip(self.stages, visible[1:], strict=True):
            y = stage(y, vis)
            features.append(y)
        return features

    def forward_sparse(
        self, x: Tensor, mask: Tensor | PatchMask
    ) -> tuple[PackedLayout, list[Tensor]]:
        """Per-stage packed visible tokens (B, K, r, r, C), r = 8, 4, 2, 1, and their layout."""
        mask = self.patch_mask(x, mask)
        layout = PackedLayout(mask)
        tokens = self.stem.forward_packed(x, mask)
        features = []
        for stage in self.stages:
            tokens = stage.forward_packed(tokens, layout)
            features.append(tokens)
        return layout, features

    def forward_features(self, x: Tensor, mask: Tensor | PatchMask | None = None) -> list[Tensor]:
        """Per-stage feature maps (B, C_i, H_i, W_i); hidden cells are zero when masked."""
        if mask is None:
            return [f.permute(0, 3, 1, 2) for f in self.forward_dense(x)]
        layout, tokens = self.forward_sparse(x, mask)
        return [layout.scatter(t).permute(0, 3, 1, 2) for t in tokens]

    def forward_masked(self, x: Tensor, mask: Tensor | PatchMask) -> Tensor:
        """The last stage only (B, C, gh, gw), one cell per patch, zero at hidden patches."""
        layout, tokens = self.forward_sparse(x, mask)
        return layout.scatter(tokens[-1]).permute(0, 3, 1, 2)

    def embed(self, x: Tensor, mask: Tensor | PatchMask | None = None) -> Tensor:
        """Pooled embedding (B, C): mean of the last stage over (visible) cells, then LN."""
        if mask is None:
            pooled = self.forward_dense(x)[-1].mean(dim=(1, 2))
        else:
            pooled = self.forward_sparse(x, mask)[1][-1].mean(dim=(1, 2, 3))
        return self.norm(pooled)

    def forward(self, x: Tensor, mask: Tensor | PatchMask | None = None) -> Tensor:
        return self.embed(x, mask)


def init_weights(module: nn.Module) -> None:
    """ConvNeXt initialisation: truncated normal (std 0.02) weights, zero biases."""
    if isinstance(module, nn.Conv2d | nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def build_encoder(
    size: str = "atto",
    in_chans: int = 12,
    patch_size: int = 8,
    stem: str = "mmearth",
    drop_path_rate: float = 0.0,
) -> ConvNeXtV2Encoder:
    """A fresh encoder from the size registry, e.g. ``build_encoder("atto")``."""
    return ConvNeXtV2Encoder(EncoderConfig(size, in_chans, patch_size, stem, drop_path_rate))


# Our names → timm's (``timm.create_model("convnextv2_<size>")``); the rest is identical.
_TIMM_RENAMES = (
    ("stem.conv.", "stem.0."),
    ("stem.norm.", "stem.1."),
    (".downsample.norm.", ".downsample.0."),
    (".downsample.conv.", ".downsample.1."),
)


def timm_state_dict(encoder: ConvNeXtV2Encoder) -> dict[str, Tensor]:
    """The encoder's weights under timm's ConvNeXt V2 names and shapes.

    Only the original ConvNeXt stem exists in timm. Load with
    ``timm.create_model(f"convnextv2_{size}", in_chans=…, patch_size=patch_size // 8,
    num_classes=0).load_state_dict(...)`` (patch 32 is timm's default stem).
    """
    if encoder.config.stem != "convnext":
        raise ValueError("only stem='convnext' encoders map onto timm's ConvNeXt V2")
    conv_mlp = ENCODER_SIZES[encoder.config.size].timm_conv_mlp
    out = {}
    for name, value in encoder.state_dict().items():
        if name.startswith("norm."):
            name = "head." + name
        for ours, theirs in _TIMM_RENAMES:
            name = name.replace(ours, theirs)
        if conv_mlp and ".mlp.fc" in name and name.endswith(".weight"):
            value = value[:, :, None, None]
        out[name] = value
    return out
