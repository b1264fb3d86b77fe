"""Read an MMEarth-train ``.pth`` without running code from it.

The authors' files are ``{"model": state_dict, "optimizer": …, "epoch": …, "args":
argparse.Namespace}``. ``torch.load(weights_only=True)`` refuses every global it does not
know; the Namespace of training arguments (and the ``pathlib`` paths in it) are allowed
because building them calls no code but their constructors. Anything else is refused.
"""

from __future__ import annotations

import argparse
import pathlib
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from mpmae.mmearth_ckpt.errors import CheckpointError

# Inert containers the authors' checkpoints carry next to the weights.
SAFE_GLOBALS = [argparse.Namespace, pathlib.PosixPath, pathlib.PurePosixPath,
                pathlib.WindowsPath, pathlib.PureWindowsPath]
ENCODER_PREFIX = "encoder."


def load_encoder_weights(path: Path) -> dict[str, Tensor]:
    """The FCMAE encoder's tensors (``encoder.*`` keys, prefix removed) of a checkpoint."""
    state = _state_dict(_safe_load(path), path)
    encoder = {k.removeprefix(ENCODER_PREFIX): v for k, v in state.items()
               if k.startswith(ENCODER_PREFIX)}
    if not encoder:
        sample = ", ".join(list(state)[:3])
        raise CheckpointError(
            f"{path}: no 'encoder.*' weights (it has {sample}, …): this is not an MMEarth "
            "FCMAE pretraining checkpoint; pass a pt-…/checkpoint-199.pth of MMEarth-train")
    return encoder


def _safe_load(path: Path) -> object:
    if not path.is_file():
        raise CheckpointError(f"{path} not found: pass the .pth file of an MMEarth checkpoint")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path} holds objects that could run code when loaded ({_refused(path)}), "
            "and mpmae only loads tensors and plain containers. If the file comes from a "
            "source you trust, save just its weights (torch.save(ckpt['model'], "
            "'weights.pth')) and import that") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({e}): download "
                              "it again") from None


def _refused(path: Path) -> str:
    """The globals the safe loader would refuse, for the message."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # a legacy (non-zip) file: torch cannot list them without loading
        return "globals outside torch's allow-list"
    allowed = {f"{g.__module__}.{g.__qualname__}" for g in SAFE_GLOBALS}
    return ", ".join(sorted(set(names) - allowed)[:5]) or "globals outside torch's allow-list"


def _state_dict(obj: object, path: Path) -> Mapping[str, Tensor]:
    state = obj.get("model", obj) if isinstance(obj, Mapping) else None
    if not isinstance(state, Mapping) or not all(
            isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise CheckpointError(f"{path} holds no state dict (a mapping of names to tensors, "
                              "alone or under 'model'): it is not an MMEarth checkpoint")
    return state
