"""MP-MAE model: sparse-masked ConvNeXt V2 encoder, decoder, heads, losses, weighting.

The names below load on first use, so that importing a torch-free part of the package
(``mpmae.model.config``, ``mpmae.model.choices``) does not load torch.
"""

from mpmae.lazy import lazy_getattr

_HOMES = {
    "MPMAEConfig": "mpmae.model.config",
    "ENCODER_SIZES": "mpmae.model.convnextv2",
    "ConvNeXtV2Encoder": "mpmae.model.convnextv2",
    "EncoderConfig": "mpmae.model.convnextv2",
    "build_encoder": "mpmae.model.convnextv2",
    "timm_state_dict": "mpmae.model.convnextv2",
    "DenseMaskedReference": "mpmae.model.dense_reference",
    "PatchMask": "mpmae.model.masking",
    "random_patch_mask": "mpmae.model.masking",
    "MPMAE": "mpmae.model.mpmae",
    "MPMAEOutput": "mpmae.model.mpmae",
    "build_mpmae": "mpmae.model.mpmae",
    "load_encoder": "mpmae.model.release",
    "save_encoder": "mpmae.model.release",
}

__all__ = sorted(_HOMES)

__getattr__ = lazy_getattr(__name__, _HOMES)
