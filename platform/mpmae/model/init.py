"""How the MP-MAE's weights start, chosen by ``model.init``.

``convnext``: ConvNeXt V2's own initialisation, which every module applies when it is
built: conv and linear weights truncated normal with std 0.02, zero biases, LayerNorm 1/0,
GRN 0, the decoder's mask token N(0, 0.02).

``reference``: what produced MMEarth's published weights. FCMAE's ``_init_weights`` (in
MMEarth-train and in ConvNeXt-V2 alike) runs over the whole model after the encoder's own
and calls timm's ``trunc_normal_`` without a std for some layer types, so these get std 1.0
(cut at ±2): the encoder's depthwise convs (stem and blocks, MinkowskiDepthwiseConvolution)
and point-wise layers (MinkowskiLinear), and every dense ``nn.Conv2d`` — the decoder's 1×1
projection, its blocks' depthwise convs and the pixel heads' 1×1 convs. Everything else
(the stem's and downsamplings' convs, the decoder blocks' linear layers, the image heads)
keeps std 0.02. Likely unintended upstream, but it is what their runs trained from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from torch import nn

from mpmae.model.blocks import Block
from mpmae.model.heads import PixelHead
from mpmae.model.stems import MMEarthStem

# timm's trunc_normal_ default, which the reference's calls without a std fall back to.
REFERENCE_UNIT_STD = 1.0


class Initialised(Protocol):
    """What an initialisation reaches into: an MP-MAE's parts (named here, not imported, as
    ``mpmae.model.mpmae`` imports this module)."""

    encoder: nn.Module
    decoders: nn.ModuleDict
    heads: nn.ModuleDict


def reference_unit_std_layers(model: Initialised) -> list[nn.Module]:
    """The layers the reference initialises with std 1.0 (see the module docstring)."""
    layers: list[nn.Module] = []
    for module in model.encoder.modules():
        if isinstance(module, Block):
            layers += [module.conv_dw, module.mlp.fc1, module.mlp.fc2]
        elif isinstance(module, MMEarthStem):
            layers.append(module.conv_dw)
    for decoder in model.decoders.values():
        layers += [decoder.proj, *(block.conv_dw for block in decoder.blocks)]
    layers += [head.proj for head in model.heads.values() if isinstance(head, PixelHead)]
    return layers


def _reference_init(model: Initialised) -> None:
    for layer in reference_unit_std_layers(model):
        nn.init.trunc_normal_(layer.weight, std=REFERENCE_UNIT_STD)  # cut at ±2, as timm's


def _modules_own(model: Initialised) -> None:
    """Each module already initialised itself the ConvNeXt way when it was built."""


# The registry of initialisations, keyed by the config's choices (choices.INIT_NAMES).
INITS: dict[str, Callable[[Initialised], None]] = {
    "reference": _reference_init,
    "convnext": _modules_own,
}
