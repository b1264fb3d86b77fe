"""MMEarth's sparse FCMAE encoder (MinkowskiEngine layers) → our ConvNeXt V2, weight by weight.

The reference's names and layouts (MMEarth-train ``models/convnextv2_sparse.py``, read the
way its ``helpers.remap_checkpoint_keys`` reads them):

- ``MinkowskiConvolution.kernel`` (k·k, in, out), offset index ``w·k + h``; a 1×1 stride-1
  kernel is stored (in, out). ``MinkowskiDepthwiseConvolution.kernel`` (k·k, C) (older
  files: (k·k, 1, C)). Biases (1, C).
- ``MinkowskiLayerNorm`` wraps ``.ln``; ``MinkowskiLinear`` wraps ``.linear``.
- ``MinkowskiGRN.gamma`` / ``.beta`` (1, C).
- stem: ``initial_conv.{0 conv 3×3, 1 LN}`` + ``stem.{0 depthwise f×f/f, 1 LN}`` (MMEarth's),
  or ``stem_orig.{0 conv f×f/f, 1 LN}`` (``use_orig_stem``); ``downsample_layers.{i}.{0 LN,
  1 conv 2×2/2}`` before stage i+1; ``stages.{i}.{j}.{dwconv, norm, pwconv1, grn, pwconv2}``.

The sparse encoder has no final norm: ours gets a fresh LayerNorm (1, 0), as the reference's
downstream model does when it loads these checkpoints.
"""

from __future__ import annotations

import math
import re

from torch import Tensor

from mpmae.mmearth_ckpt.errors import CheckpointError
from mpmae.model import ENCODER_SIZES, EncoderConfig
from mpmae.model.stems import STAGE0_CELLS_PER_PATCH

FRESH = ("norm.weight", "norm.bias")  # our pooled-embedding norm: not in the checkpoint

# Our key → the reference's (regex on our names, applied in order; the first match wins).
_COMMON = (
    (r"stages\.(\d+)\.downsample\.norm\.(weight|bias)", "downsample_layers.{p1}.0.ln.{2}"),
    (r"stages\.(\d+)\.downsample\.conv\.weight", "downsample_layers.{p1}.1.kernel"),
    (r"stages\.(\d+)\.downsample\.conv\.bias", "downsample_layers.{p1}.1.bias"),
    (r"stages\.(\d+)\.blocks\.(\d+)\.conv_dw\.weight", "stages.{1}.{2}.dwconv.kernel"),
    (r"stages\.(\d+)\.blocks\.(\d+)\.conv_dw\.bias", "stages.{1}.{2}.dwconv.bias"),
    (r"stages\.(\d+)\.blocks\.(\d+)\.norm\.(weight|bias)", "stages.{1}.{2}.norm.ln.{3}"),
    (r"stages\.(\d+)\.blocks\.(\d+)\.mlp\.fc1\.(weight|bias)", "stages.{1}.{2}.pwconv1.linear.{3}"),
    (r"stages\.(\d+)\.blocks\.(\d+)\.mlp\.fc2\.(weight|bias)", "stages.{1}.{2}.pwconv2.linear.{3}"),
    (r"stages\.(\d+)\.blocks\.(\d+)\.mlp\.grn\.weight", "stages.{1}.{2}.grn.gamma"),
    (r"stages\.(\d+)\.blocks\.(\d+)\.mlp\.grn\.bias", "stages.{1}.{2}.grn.beta"),
)
_STEMS = {
    "mmearth": (
        (r"stem\.conv\.weight", "initial_conv.0.kernel"),
        (r"stem\.conv\.bias", "initial_conv.0.bias"),
        (r"stem\.norm_in\.(weight|bias)", "initial_conv.1.ln.{1}"),
        (r"stem\.conv_dw\.weight", "stem.0.kernel"),
        (r"stem\.conv_dw\.bias", "stem.0.bias"),
        (r"stem\.norm\.(weight|bias)", "stem.1.ln.{1}"),
    ),
    "convnext": (
        (r"stem\.conv\.weight", "stem_orig.0.kernel"),
        (r"stem\.conv\.bias", "stem_orig.0.bias"),
        (r"stem\.norm\.(weight|bias)", "stem_orig.1.ln.{1}"),
    ),
}
_FIRST_KERNEL = {"mmearth": "initial_conv.0.kernel", "convnext": "stem_orig.0.kernel"}


def infer_architecture(ref: dict[str, Tensor], where: str) -> EncoderConfig:
    """The encoder the weights fit: stem, size, input channels and patch size, from the
    reference tensors' names and shapes."""
    stem = next((s for s, k in _FIRST_KERNEL.items() if k in ref), None)
    if stem is None:
        raise CheckpointError(
            f"{where}: the encoder has neither 'initial_conv.0.kernel' (MMEarth's stem) nor "
            "'stem_orig.0.kernel': not an MMEarth sparse ConvNeXt V2 (MinkowskiEngine) "
            "checkpoint")
    depths, dims = [], []
    for i in range(4):
        blocks = [k for k in ref if re.fullmatch(rf"stages\.{i}\.\d+\.dwconv\.kernel", k)]
        if not blocks:
            raise CheckpointError(f"{where}: no blocks of stage {i} ('stages.{i}.0.dwconv."
                                  "kernel'): not a four-stage ConvNeXt V2 encoder")
        depths.append(len(blocks))
        dims.append(ref[blocks[0]].shape[-1])
    size = next((n for n, s in ENCODER_SIZES.items()
                 if s.depths == tuple(depths) and s.dims == tuple(dims)), None)
    if size is None:
        raise CheckpointError(
            f"{where}: a ConvNeXt V2 with depths {tuple(depths)} and widths {tuple(dims)}, "
            f"which is none of mpmae's sizes ({', '.join(ENCODER_SIZES)})")
    in_chans, f = _stem_shape(ref, stem, where)
    return EncoderConfig(size, in_chans, STAGE0_CELLS_PER_PATCH * f, stem)


def _stem_shape(ref: dict[str, Tensor], stem: str, where: str) -> tuple[int, int]:
    """Input channels and the stem's stride f (patch = 8·f)."""
    first = ref[_FIRST_KERNEL[stem]]
    if stem == "mmearth":  # 3×3 conv (9, in, C0); the stride is the depthwise kernel's
        ok = first.ndim == 3 and "stem.0.kernel" in ref
        volume = ref["stem.0.kernel"].shape[0] if ok else 0
    else:  # the f×f/f conv: (f·f, in, C0), or (in, C0) when f = 1
        ok = first.ndim in (2, 3)
        volume = first.shape[0] if first.ndim == 3 else 1
    f = math.isqrt(volume)
    if not ok or f * f != volume:
        raise CheckpointError(f"{where}: the stem's kernels do not have the shapes of an "
                              "MMEarth sparse ConvNeXt V2 stem")
    return first.shape[-2], f


def remap(ref: dict[str, Tensor], ours: dict[str, Tensor], stem: str,
          where: str) -> dict[str, Tensor]:
    """Our state dict from the reference tensors; every key used, every shape checked."""
    out, used = {}, set()
    for key, target in ours.items():
        if key in FRESH:
            out[key] = target.clone()
            continue
        name, kind = reference_name(key, stem)
        if name not in ref:
            missing = sorted(set(_expected(ours, stem)) - set(ref))
            raise CheckpointError(
                f"{where}: lacks {len(missing)} encoder weight(s) of its architecture, e.g. "
                f"{', '.join('encoder.' + m for m in missing[:3])}: the file is damaged or "
                "not an MMEarth FCMAE checkpoint")
        value = _convert(ref[name], kind, target.shape)
        if value is None:
            raise CheckpointError(
                f"{where}: 'encoder.{name}' has shape {tuple(ref[name].shape)}, which does "
                f"not fit {key} {tuple(target.shape)}: not an MMEarth FCMAE checkpoint")
        out[key] = value.contiguous()
        used.add(name)
    unused = sorted(set(ref) - used)
    if unused:
        raise CheckpointError(
            f"{where}: {len(unused)} encoder weight(s) fit no layer, e.g. "
            f"{', '.join('encoder.' + u for u in unused[:3])}: the checkpoint is of another "
            "architecture")
    return out


def reference_name(key: str, stem: str) -> tuple[str, str]:
    """The reference's name for our ``key`` and how its tensor is laid out."""
    for pattern, template in _STEMS[stem] + _COMMON:
        m = re.fullmatch(pattern, key)
        if m:
            # {p1}: stage i's downsampling is the reference's downsample_layers[i - 1]
            p1 = int(m.group(1)) - 1 if "{p1}" in template else None
            name = template.format(None, *m.groups(), p1=p1)
            return name, _kind(name)
    raise KeyError(f"no reference name for {key}")


def _expected(ours: dict[str, Tensor], stem: str) -> list[str]:
    return [reference_name(k, stem)[0] for k in ours if k not in FRESH]


def _kind(name: str) -> str:
    if name.endswith("kernel"):
        return "depthwise" if ".dwconv." in name or name.startswith("stem.0.") else "conv"
    return "linear" if ".linear.weight" in name else "vector"


def _convert(value: Tensor, kind: str, shape: tuple[int, ...]) -> Tensor | None:
    """``value`` in our layout, or None when it cannot be one of ``shape``."""
    if kind == "vector":  # LN, GRN γ/β and biases: (C,), (1, C) or (1, 1, 1, C)
        out = value.reshape(-1) if value.numel() == math.prod(shape) else None
    elif kind == "linear":
        out = value
    elif kind == "depthwise":  # (k·k, C) or (k·k, 1, C) → (C, 1, k, k)
        c, k = shape[0], shape[-1]
        flat = value.reshape(value.shape[0], -1) if value.ndim in (2, 3) else None
        out = None if flat is None or flat.shape != (k * k, c) else \
            flat.T.reshape(c, 1, k, k).transpose(2, 3)
    elif value.ndim == 2:  # a 1×1 stride-1 conv: (in, out) → (out, in, 1, 1)
        out = value.T[:, :, None, None]
    else:  # (k·k, in, out) → (out, in, k, k), offset index w·k + h
        o, i, k = shape[0], shape[1], shape[-1]
        out = None if value.shape != (k * k, i, o) else \
            value.permute(2, 1, 0).reshape(o, i, k, k).transpose(2, 3)
    return out if out is not None and tuple(out.shape) == tuple(shape) else None
