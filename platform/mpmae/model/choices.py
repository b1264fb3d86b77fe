"""The model's named choices and the masking arithmetic its config checks, without torch.

The ``model`` config section is built from these, so ``mpmae pretrain --help-config`` and a
config check never load torch. Each implementation keys its registry by the same names
(``convnextv2.ENCODER_SIZES``, ``stems.STEMS``, ``weighting.WEIGHTINGS``, ``init.INITS``);
``tests/model/test_choices.py`` holds them equal.
"""

from __future__ import annotations

from typing import Literal, get_args

ModelSize = Literal["atto", "femto", "pico", "nano", "tiny"]
Stem = Literal["mmearth", "convnext"]
Weighting = Literal["uncertainty", "unweighted"]
Init = Literal["reference", "convnext"]
ImageHeadNorm = Literal["cells", "pooled"]
MissingTargets = Literal["ignore", "zero"]

MODEL_SIZES: tuple[str, ...] = get_args(ModelSize)
STEM_NAMES: tuple[str, ...] = get_args(Stem)
WEIGHTING_NAMES: tuple[str, ...] = get_args(Weighting)
INIT_NAMES: tuple[str, ...] = get_args(Init)
IMAGE_HEAD_NORMS: tuple[str, ...] = get_args(ImageHeadNorm)
MISSING_TARGETS: tuple[str, ...] = get_args(MissingTargets)


def num_kept(num_patches: int, mask_ratio: float) -> int:
    """Visible patches per sample: ``int(L·(1 − ratio))`` as in FCMAE (0.6 of 49 → 19 kept).

    The epsilon stops float noise from dropping a patch (``10·(1 − 0.9)`` is 0.99999…).
    """
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    return max(1, int(num_patches * (1.0 - mask_ratio) + 1e-6))
