"""A fine-tune cell's folder: its epoch checkpoints, its result and its figure.

    <work_dir>/<encoder>/<dataset>/<partition>/seed<S>-<config hash>/
        epoch-0007.pt      model, optimiser, epoch, history (weights_only-loadable)
        epoch-0007.json    written after the .pt: its SHA-256 (vouches it is whole)
        result.json        the finished cell's scores: a re-run reads it, nothing retrains
        predictions.png    segmentation only

Every file is written atomically (temp file + rename, or one S3 PUT). A checkpoint counts
only once its manifest is there and its hash matches; a damaged newest one falls back to
the one before, as pretraining's do. The newest ``keep`` are kept.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
from collections.abc import Callable
from typing import Any

import torch

from mpmae.storage import Location, PathNotFoundError
from mpmae.train.checkpoint import CheckpointError

RESULT_FILE = "result.json"
FIGURE_FILE = "predictions.png"
CHECKPOINT = re.compile(r"epoch-(\d{4,})\.json")


def cell_key(encoder: str, dataset: str, partition: str, seed: int, recipe: dict) -> tuple:
    """The folder parts of one cell; the hash covers everything that changes its result."""
    blob = json.dumps({"encoder": encoder, **recipe}, sort_keys=True).encode()
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", encoder).strip("-.")[-60:] or "encoder"
    return slug, dataset, partition, f"seed{seed}-{hashlib.sha256(blob).hexdigest()[:12]}"


class CellStore:
    def __init__(self, folder: Location, keep: int = 2) -> None:
        self.folder, self.keep = folder, keep

    def result(self) -> dict[str, Any] | None:
        """The finished cell's result, or None while it is not finished."""
        try:
            return json.loads(self.folder.join(RESULT_FILE).read_bytes())
        except PathNotFoundError:
            return None
        except ValueError:
            return None  # a result is written atomically: unreadable means never finished

    def write_result(self, result: dict[str, Any]) -> None:
        self.folder.join(RESULT_FILE).write_bytes_atomic(json.dumps(result, indent=2).encode())

    def write_file(self, name: str, data: bytes) -> None:
        self.folder.join(name).write_bytes_atomic(data)

    def read_file(self, name: str) -> bytes | None:
        try:
            return self.folder.join(name).read_bytes()
        except PathNotFoundError:
            return None

    def save(self, epoch: int, state: dict[str, Any]) -> None:
        """Checkpoint the end of ``epoch``, then drop all but the newest ``keep``."""
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
        self.folder.join(_name(epoch, "pt")).write_bytes_atomic(data)
        manifest = {"epoch": epoch, "sha256": hashlib.sha256(data).hexdigest()}
        self.folder.join(_name(epoch, "json")).write_bytes_atomic(json.dumps(manifest).encode())
        for old in self.epochs()[self.keep:]:
            for suffix in ("json", "pt"):  # the manifest first: a half-deleted pair never counts
                self.folder.fs.delete_file(self.folder.join(_name(old, suffix)).path)

    def epochs(self) -> list[int]:
        """Epochs with a checkpoint manifest, newest first."""
        found = (CHECKPOINT.fullmatch(name) for name in self.folder.list_files(".json"))
        return sorted((int(m.group(1)) for m in found if m), reverse=True)

    def load_latest(self, warn: Callable[[str], None]) -> dict[str, Any] | None:
        """The newest intact checkpoint's state; None for a cell that has none."""
        epochs = self.epochs()
        for epoch in epochs:
            try:
                return self._load(epoch)
            except (CheckpointError, OSError) as e:
                warn(f"{e}; trying the cell's next newest checkpoint")
        if epochs:
            raise CheckpointError(f"no checkpoint in {self.folder.uri} is intact (tried "
                                  f"{len(epochs)}): delete that folder to train the cell "
                                  "afresh")
        return None

    def _load(self, epoch: int) -> dict[str, Any]:
        manifest_at, state_at = (self.folder.join(_name(epoch, s)) for s in ("json", "pt"))
        try:
            expected = json.loads(manifest_at.read_bytes())["sha256"]
        except (ValueError, KeyError, TypeError):
            raise CheckpointError(f"{manifest_at.uri} is not a checkpoint manifest") from None
        data = state_at.read_bytes()
        if hashlib.sha256(data).hexdigest() != expected:
            raise CheckpointError(f"checkpoint {state_at.uri} is damaged (hash mismatch)")
        try:
            # Tensors, numbers, strings and containers only: nothing in it can run code.
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise CheckpointError(f"checkpoint {state_at.uri} holds more than tensors and "
                                  f"plain values ({str(e).splitlines()[0]}); it was not "
                                  "written by mpmae or was tampered with") from None


def _name(epoch: int, suffix: str) -> str:
    return f"epoch-{epoch:04d}.{suffix}"
