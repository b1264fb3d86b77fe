"""Training checkpoints: one folder with the state and a manifest that vouches for it.

``state.pt`` holds model, optimiser, scheduler, the loop's position, every rank's RNG
states (as tensors), the MLflow run id and the resolved config; it loads with
``weights_only=True``, so a tampered file cannot run code. ``checkpoint.json`` is written
after it and carries its SHA-256 and the data position (so the driver can place the stream
without reading the state): an integrity check against a crash mid-write or a damaged copy,
not authentication (whoever can write one file can write both). Ray Train registers a
checkpoint only once it is fully persisted, and loading verifies the hash.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mpmae.errors import MpmaeError

STATE_FILE = "state.pt"
MANIFEST_FILE = "checkpoint.json"


class CheckpointError(MpmaeError, RuntimeError):
    """A checkpoint is incomplete or damaged."""


def rng_state() -> dict[str, Any]:
    """Every RNG's state as tensors and plain numbers: numpy's and Python's own state
    objects would need a full unpickler to load, which can run code from the file."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64),
                   "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(folder: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (must hold ``step``, may hold ``epoch`` and ``epoch_tiles``) into
    ``folder``; the manifest goes last."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / STATE_FILE)
    manifest = {"step": int(state["step"]), "epoch": int(state.get("epoch", 0)),
                "epoch_tiles": int(state.get("epoch_tiles", 0)),
                "sha256": _sha256(folder / STATE_FILE), "format_version": 2}
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    return folder


def load_checkpoint(folder: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The state saved in ``folder``, after checking it is complete and undamaged."""
    folder = Path(folder)
    manifest_file, state_file = folder / MANIFEST_FILE, folder / STATE_FILE
    if not manifest_file.is_file() or not state_file.is_file():
        raise CheckpointError(f"checkpoint {folder} is incomplete (no {MANIFEST_FILE} or "
                              f"{STATE_FILE})")
    try:
        expected = json.loads(manifest_file.read_text())["sha256"]
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"checkpoint {manifest_file} is not a checkpoint manifest") from None
    if _sha256(state_file) != expected:
        raise CheckpointError(f"checkpoint {folder} is damaged (hash mismatch)")
    try:
        # Tensors, numbers, strings and containers only: nothing in the file can run code.
        return torch.load(state_file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e).splitlines()[0]
        raise CheckpointError(f"checkpoint {state_file} holds more than tensors and plain "
                              f"values ({reason}); it was not written by this mpmae or was "
                              "tampered with") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
