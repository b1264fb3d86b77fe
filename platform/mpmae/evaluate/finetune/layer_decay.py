"""Layer-wise learning-rate decay for a ConvNeXt V2 encoder and the head on top of it.

Layer ids follow ConvNeXt V2's "single" assignment (optim_factory.py): block j of stage i
is layer ``sum(depths[:i]) + j + 1``, stage i's downsampling shares the id of its first
block, and everything after the encoder's blocks (its final norm, the head, a decoder) is
layer ``L + 1`` with ``L = sum(depths)``, trained at the full lr. The stem is layer 0 (the
reference puts it with the first block; its own id decays it one step more, as the input
end of the network). Layer i trains at ``lr × decay^(L + 1 - i)``.

Biases and every 1-D parameter (LayerNorm weights, GRN γ and β) get no weight decay.

timm's ``param_groups_layer_decay``, given a ``group_matcher`` for these names, makes the
same groups with the same ``lr_scale`` and weight decay (checked on atto), but orders each
layer's decayed group before its undecayed one, where these are ordered (layer, decayed).
torch matches a saved optimizer state to its groups by position, so with timm's groups a
cell's existing checkpoints would no longer resume; these are kept.
"""

from __future__ import annotations

from torch import nn

ENCODER_PREFIX = "encoder."


def layer_id(name: str, depths: tuple[int, ...]) -> int:
    """The layer a parameter of the fine-tuned model belongs to (names as in
    ``model.named_parameters()``, the encoder under ``encoder.``)."""
    top = sum(depths) + 1
    if not name.startswith(ENCODER_PREFIX):
        return top
    parts = name.removeprefix(ENCODER_PREFIX).split(".")
    if parts[0] == "stem":
        return 0
    if parts[0] != "stages":
        return top  # the encoder's final norm sits with the head
    first = sum(depths[: int(parts[1])]) + 1  # of the stage's blocks
    return first + int(parts[3]) if parts[2] == "blocks" else first


def param_groups(model: nn.Module, depths: tuple[int, ...], weight_decay: float,
                 decay: float) -> list[dict]:
    """AdamW groups, one per (layer, decayed or not), each with its ``lr_scale``."""
    top = sum(depths) + 1
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        layer = layer_id(name, depths)
        decayed = param.ndim > 1 and not name.endswith(".bias")
        group = groups.setdefault((layer, decayed), {
            "params": [], "weight_decay": weight_decay if decayed else 0.0,
            "lr_scale": decay ** (top - layer), "layer": layer})
        group["params"].append(param)
    return [groups[k] for k in sorted(groups)]
