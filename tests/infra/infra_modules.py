"""Import the scripts under infra/ by path: infra/ is not a package, by design (its scripts
are run as files: `python infra/local/stack.py up`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load(relative_path: str) -> ModuleType:
    """The module at ``ROOT / relative_path``, imported once under its file's stem."""
    path = ROOT / relative_path
    name = f"infra_{path.stem}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
