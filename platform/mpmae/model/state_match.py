"""Loading a training checkpoint's weights into a model built from the current config.

A checkpoint written under other model settings (another size or pretext set, or the image
heads' LayerNorm in the other place) would fail deep in ``load_state_dict`` with a list of
tensor names; this names what differs and the setting that reads it.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from mpmae.errors import MpmaeError

CELL_NORM_KEY = "cell_norm.weight"


class ModelStateError(MpmaeError, ValueError):
    """A checkpoint's weights do not fit the model the config builds."""


def load_model_state(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """``model.load_state_dict(state)``, or one clear error naming ``source`` (where the
    state came from) and how to go on."""
    ours = model.state_dict()
    missing, unexpected = sorted(set(ours) - set(state)), sorted(set(state) - set(ours))
    reshaped = sorted(k for k in set(ours) & set(state) if ours[k].shape != state[k].shape)
    if not (missing or unexpected or reshaped):
        model.load_state_dict(state)
        return
    raise ModelStateError(f"{source} holds weights of another model layout "
                          f"({_difference(missing, unexpected, reshaped)}); "
                          f"{_advice(missing, unexpected)}")


def _difference(missing: list[str], unexpected: list[str], reshaped: list[str]) -> str:
    parts = [f"{label} {len(keys)} (e.g. {keys[0]})" for label, keys in
             (("lacks", missing), ("has extra", unexpected), ("has other shapes for", reshaped))
             if keys]
    return ", ".join(parts)


def _advice(missing: list[str], unexpected: list[str]) -> str:
    if CELL_NORM_KEY in missing and any(k.endswith(".norm.weight") for k in unexpected):
        return ("it was written with model.image_head_norm=pooled (the layout before the image "
                "heads followed MMEarth): resume it with --set model.image_head_norm=pooled, or "
                "start afresh under a new run_name")
    if CELL_NORM_KEY in unexpected:
        return ("it was written with model.image_head_norm=cells: resume it with "
                "--set model.image_head_norm=cells, or start afresh under a new run_name")
    return ("resume it with the model settings it was written with (the checkpoint's "
            "'config' holds them), or start afresh under a new run_name")


def load_optimizer_state(optimizer, state: Mapping, source: str) -> None:
    """``optimizer.load_state_dict(state)``, or one clear error if its parameter groups
    differ (another model layout, or optim.decay_grn_and_mask_token changed)."""
    try:
        optimizer.load_state_dict(state)
    except ValueError as e:
        raise ModelStateError(
            f"{source} holds optimizer state for other parameter groups ({e}): resume it "
            "with the optim.decay_grn_and_mask_token and model settings it was written with "
            "(the checkpoint's 'config' holds them), or start afresh under a new run_name"
        ) from None
