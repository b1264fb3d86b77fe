"""Pretraining checkpoints: one folder with the state and a manifest that vouches for it,
in the training engine's format (:mod:`mpmae.train.engine.checkpoint_store`).

``state.pt`` holds model, optimiser, the loop's position, every rank's RNG states (as
tensors), the MLflow run id and the resolved config. ``checkpoint.json`` carries its
SHA-256 and the data position (so the driver can place the stream without reading the
state). Ray Train registers a checkpoint only once it is fully persisted and keeps the
newest ``train.keep_checkpoints``; loading verifies the hash.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mpmae.storage import resolve
from mpmae.train.engine.checkpoint_store import read_checkpoint, write_checkpoint

STATE_FILE = "state.pt"
MANIFEST_FILE = "checkpoint.json"


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
    place = resolve(folder)
    fields = {"step": int(state["step"]), "epoch": int(state.get("epoch", 0)),
              "epoch_tiles": int(state.get("epoch_tiles", 0)), "format_version": 2}
    write_checkpoint(place.join(STATE_FILE), place.join(MANIFEST_FILE), state, fields)
    return Path(folder)


def load_checkpoint(folder: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The state saved in ``folder``, after checking it is complete and undamaged."""
    place = resolve(folder)
    return read_checkpoint(place.join(STATE_FILE), place.join(MANIFEST_FILE), map_location)
