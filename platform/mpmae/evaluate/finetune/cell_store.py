"""A fine-tune cell's folder: its epoch checkpoints, its result and its figure.

    <work_dir>/<encoder>/<dataset>/<partition>/seed<S>-<config hash>/
        epoch-0007.pt      model, optimiser, epoch, history (weights_only-loadable)
        epoch-0007.json    written after the .pt: its SHA-256 (vouches it is whole)
        result.json        the finished cell's scores: a re-run reads it, nothing retrains
        predictions.png    segmentation only

The checkpoints are the training engine's rotating store
(:class:`mpmae.train.engine.checkpoint_store.CheckpointStore`: atomic, hashed,
weights-only, the newest ``keep`` kept, a damaged newest one falls back to the one before);
the result and the figure are written atomically too.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from mpmae.storage import PathNotFoundError
from mpmae.train.engine.checkpoint_store import CheckpointStore

RESULT_FILE = "result.json"
FIGURE_FILE = "predictions.png"


def cell_key(encoder: str, dataset: str, partition: str, seed: int, recipe: dict) -> tuple:
    """The folder parts of one cell; the hash covers everything that changes its result."""
    blob = json.dumps({"encoder": encoder, **recipe}, sort_keys=True).encode()
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", encoder).strip("-.")[-60:] or "encoder"
    return slug, dataset, partition, f"seed{seed}-{hashlib.sha256(blob).hexdigest()[:12]}"


class CellStore(CheckpointStore):
    """A cell's epoch checkpoints, and its result and files."""

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
