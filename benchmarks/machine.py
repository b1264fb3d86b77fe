"""The machine a benchmark ran on, for its JSON: figures mean little without it."""

from __future__ import annotations

import os
import platform


def machine() -> str:
    """``host: N CPU cores, GPU name or no GPU (OS)``."""
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{platform.node()}: {os.cpu_count()} CPU cores, {gpu} ({platform.platform()})"
