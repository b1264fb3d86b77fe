"""Pretraining checkpoints: one folder with the state and a manifest that vouches for it,
in the training engine's format (:mod:`mpmae.train.engine.checkpoint_store`).

``state.pt`` holds model, optimiser, the loop's position, every rank's RNG states (as
tensors), the MLflow run id and the resolved config. ``checkpoint.json`` carries its
SHA-256 and the data position (so the driver can place the stream without reading the
state); loading verifies the hash.

Rank 0 writes each checkpoint straight into the run folder (:class:`RunCheckpoints`), each
file atomically and the manifest last, and only then hands it to Ray Train
(``checkpoint_upload_mode=NO_UPLOAD``), which registers it and keeps the newest
``train.keep_checkpoints``. Ray's own upload is not used because of where its failure
surfaces: in Ray 2.60 ``ray.train.report`` copies the folder (``pyarrow.fs.copy_files``, no
temp+rename, manifest and state in any order) after its barrier, and an upload error raises
out of ``report`` on rank 0 alone, with the report half done: the worker group fails (a
restart, or the end of the run) and a local copy may be left half-written. Writing first
lets a failed write be one warning, a report without a checkpoint, and training going on.
"""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mpmae.errors import Preempted
from mpmae.storage import Location, StorageError, resolve
from mpmae.train.engine.checkpoint_store import FailedWrites, read_checkpoint, write_checkpoint

STATE_FILE = "state.pt"
MANIFEST_FILE = "checkpoint.json"
FOLDER_PREFIX = "checkpoint_"  # Ray Train's own prefix: every checkpoint folder has it


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
    write_checkpoint_to(resolve(folder), state)
    return Path(folder)


def write_checkpoint_to(place: Location, state: dict[str, Any]) -> None:
    """:func:`save_checkpoint` into a resolved location (its storage options kept)."""
    fields = {"step": int(state["step"]), "epoch": int(state.get("epoch", 0)),
              "epoch_tiles": int(state.get("epoch_tiles", 0)), "format_version": 2}
    write_checkpoint(place.join(STATE_FILE), place.join(MANIFEST_FILE), state, fields)


class RunCheckpoints:
    """Rank 0's checkpoints of a pretraining run, written into its run folder: a failed
    write is one warning line and no checkpoint (training goes on); more than ``limit`` in
    a row raise :class:`~mpmae.train.engine.checkpoint_store.CheckpointWriteError`.
    ``latest_step`` is the step of the newest checkpoint there (None: none yet)."""

    def __init__(self, run_dir: Location, limit: int, warn: Callable[[str], None],
                 latest_step: int | None = None) -> None:
        self.run_dir, self.latest_step = run_dir, latest_step
        self.failures = FailedWrites(limit, warn)
        # A preemption's checkpoint that failed: raised once the run has wound down.
        self.unsaved_preemption: Preempted | None = None

    def write(self, state: dict[str, Any], preempted: bool = False) -> Location | None:
        """Write ``state`` into a new folder; its location, or None when the write failed.
        A preemption's checkpoint never raises here: the run ends at this step anyway, and
        :attr:`unsaved_preemption` says from which step the same command will resume."""
        step = int(state["step"])
        # Unique even when a resumed run reaches a step again: Ray Train deletes rotated
        # checkpoints by folder, which must never be a newer one's.
        place = self.run_dir.join(f"{FOLDER_PREFIX}step-{step:08d}_{uuid.uuid4().hex[:8]}")
        try:
            write_checkpoint_to(place, state)
        except StorageError as e:
            _discard(place)
            latest = None if self.latest_step is None else f"step {self.latest_step}"
            line = self.failures.failed(f"checkpoint at step {step}", place.uri, e, latest,
                                        stop=not preempted)
            if preempted:
                self.unsaved_preemption = Preempted(
                    f"preempted at step {step}, but its {line}; run the same command to "
                    f"resume from {latest or 'the start'}")
            return None
        self.failures.written()
        self.latest_step = step
        return place


def _discard(place: Location) -> None:
    """Remove what a failed write left, as far as the store lets us (a state without its
    manifest never counts anyway)."""
    with contextlib.suppress(OSError):
        place.fs.delete_dir(place.path)


def load_checkpoint(folder: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The state saved in ``folder``, after checking it is complete and undamaged."""
    place = resolve(folder)
    return read_checkpoint(place.join(STATE_FILE), place.join(MANIFEST_FILE), map_location)
