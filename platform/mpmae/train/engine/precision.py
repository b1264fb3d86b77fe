"""Which precision a training runs its forward passes in, and the autocast that gives it.

``auto`` is bf16 autocast on a GPU and fp32 elsewhere; pretraining lets its config choose
(``train.precision``), fine-tuning always takes ``auto``. bf16 needs no loss scaling.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# torch is imported where it runs: the config imports resolve_precision, and the config's
# --help-config must not load torch.


def resolve_precision(setting: str, device_type: str) -> str:
    """``fp32`` or ``bf16`` for ``setting`` (``auto``, ``bf16`` or ``fp32``) on a device of
    this type (``cuda``, ``cpu``)."""
    if setting == "auto":
        return "bf16" if device_type == "cuda" else "fp32"
    return setting


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """The forward pass's context for ``precision`` (``bf16`` or ``fp32``) on ``device``."""
    import torch

    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
