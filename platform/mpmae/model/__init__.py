"""MP-MAE model: sparse-masked ConvNeXt V2 encoder, decoder, heads, losses, weighting."""

from mpmae.model.config import MPMAEConfig
from mpmae.model.convnextv2 import (
    ENCODER_SIZES,
    ConvNeXtV2Encoder,
    EncoderConfig,
    build_encoder,
    timm_state_dict,
)
from mpmae.model.dense_reference import DenseMaskedReference
from mpmae.model.masking import PatchMask, random_patch_mask
from mpmae.model.mpmae import MPMAE, MPMAEOutput, build_mpmae
from mpmae.model.release import load_encoder, save_encoder

__all__ = [
    "ENCODER_SIZES",
    "MPMAE",
    "ConvNeXtV2Encoder",
    "DenseMaskedReference",
    "EncoderConfig",
    "MPMAEConfig",
    "MPMAEOutput",
    "PatchMask",
    "build_encoder",
    "build_mpmae",
    "load_encoder",
    "random_patch_mask",
    "save_encoder",
    "timm_state_dict",
]
