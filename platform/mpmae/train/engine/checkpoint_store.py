"""Training checkpoints, one format for every training here, and their rotating store.

A checkpoint is a state file (``torch.save`` of tensors and plain values) and a manifest
written after it that carries the state's SHA-256: an integrity check against a crash
mid-write or a damaged copy, not authentication (whoever can write one file can write
both). Every file is written atomically (temp file + rename, or one S3 PUT); a checkpoint
counts only once its manifest is there and its hash matches, and it loads with
``weights_only=True``, so a tampered file cannot run code. A damaged newest checkpoint
falls back to the one before.

A write that fails (a full disk, an S3 error that outlasted the retries) leaves the
checkpoints before it as they were, and the newest of them stays the one a resume uses: the
failed one has no manifest, so it never counts. Training goes on and tries again at the next
checkpoint, with one warning line per failure (:class:`FailedWrites`); only a run of
``limit`` + 1 failures in a row stops it, since a run that can no longer save loses ever
more work to the next crash.

Pretraining keeps one checkpoint per folder that Ray Train persists and rotates
(:mod:`mpmae.train.checkpoint`); a fine-tune cell keeps its epochs in a
:class:`CheckpointStore`:

    epoch-0007.pt      the state
    epoch-0007.json    written after the .pt: {"epoch": 7, "state": "epoch-0007.pt",
                       "sha256": ...}

A checkpoint never changes in place: an epoch written again (a preempted one, finished by
the resume) gets a state file of a new name (``epoch-0007-<random>.pt``), and its manifest,
written last in one atomic step, switches over to it; the old state goes only then. A write
that fails midway leaves the epoch's previous checkpoint whole. Manifests without a
``state`` name ``epoch-NNNN.pt``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import pickle
import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch

from mpmae.errors import MpmaeError
from mpmae.storage import Location, PathNotFoundError, StorageError

T = TypeVar("T")
EPOCH_MANIFEST = re.compile(r"epoch-(\d{4,})\.json")
STATE_NAME = re.compile(r"epoch-\d{4,}(-[0-9a-f]{8})?\.pt")
DEFAULT_MAX_FAILED_WRITES = 3  # failed checkpoint writes in a row that training survives


class CheckpointError(MpmaeError, RuntimeError):
    """A checkpoint is incomplete or damaged."""


class CheckpointWriteError(CheckpointError):
    """Too many checkpoint writes failed in a row: the training stops."""


class FailedWrites:
    """Checkpoint writes that failed, in a row and in all. Each failure is one ``warn`` line
    naming the checkpoint, where it went, the cause and the checkpoint that remains the
    latest; past ``limit`` failures in a row it raises :class:`CheckpointWriteError`."""

    def __init__(self, limit: int, warn: Callable[[str], None]) -> None:
        self.limit, self.warn = limit, warn
        self.in_a_row = self.total = 0

    def written(self) -> None:
        self.in_a_row = 0

    def failed(self, what: str, where: str, error: Exception, latest: str | None,
               stop: bool = True) -> str:
        """Count one failed write of ``what`` to ``where``; ``latest`` names the checkpoint
        that remains the newest (None: there is none). With ``stop``, warns, or raises once
        the failures in a row pass ``limit``; without, only says it: returns the line."""
        self.in_a_row += 1
        self.total += 1
        remains = (f"the one at {latest} remains the latest" if latest
                   else "no earlier checkpoint exists")
        line = f"{what} could not be written to {where}: {error}; {remains}"
        if stop and self.in_a_row > self.limit:
            raise CheckpointWriteError(
                f"{line}. {self.in_a_row} checkpoint writes failed in a row, more than "
                f"{self.limit} allowed: stopping. Fix the storage (free space, permissions, "
                "the store's health) and run the same command again to resume"
                + (f" from {latest}" if latest else ""))
        if stop:
            self.warn(f"{line} (training goes on and tries again at the next checkpoint; "
                      f"failure {self.in_a_row} in a row of {self.limit} allowed)")
        return line


def write_checkpoint(state_at: Location, manifest_at: Location, state: dict[str, Any],
                     fields: dict[str, Any]) -> None:
    """Write ``state``, then its manifest: ``fields`` and the state's SHA-256."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    state_at.write_bytes_atomic(data)
    manifest = {**fields, "sha256": hashlib.sha256(data).hexdigest()}
    manifest_at.write_bytes_atomic(json.dumps(manifest).encode())


def read_checkpoint(state_at: Location, manifest_at: Location,
                    map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The state, after checking that its manifest vouches for it."""
    try:
        manifest, data = manifest_at.read_bytes(), state_at.read_bytes()
    except PathNotFoundError as e:
        raise CheckpointError(f"checkpoint is incomplete: {e}") from None
    try:
        expected = json.loads(manifest)["sha256"]
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"{manifest_at.uri} is not a checkpoint manifest") from None
    if hashlib.sha256(data).hexdigest() != expected:
        raise CheckpointError(f"checkpoint {state_at.uri} is damaged (hash mismatch)")
    try:
        # Tensors, numbers, strings and containers only: nothing in it can run code.
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"checkpoint {state_at.uri} holds more than tensors and plain "
                              f"values ({str(e).splitlines()[0]}); it was not written by "
                              "mpmae or was tampered with") from None


def newest_intact(candidates: Sequence[T], load: Callable[[T], dict[str, Any]],
                  warn: Callable[[str], None], where: str, advice: str) -> dict[str, Any] | None:
    """The state of the first of ``candidates`` (newest first) that loads; None when there
    are none. Past a damaged one, ``warn`` says so; when none loads, the error names
    ``where`` they were and gives the ``advice``."""
    for candidate in candidates:
        try:
            return load(candidate)
        except (CheckpointError, OSError) as e:
            warn(f"{e}; trying the next newest checkpoint")
    if candidates:
        raise CheckpointError(f"no checkpoint in {where} is intact (tried {len(candidates)}): "
                              f"{advice}")
    return None


class CheckpointStore:
    """One training's checkpoints, one per epoch, in ``folder``; the newest ``keep`` stay.
    A failed write warns through ``warn`` and training goes on, up to ``max_failed_writes``
    failures in a row (:class:`FailedWrites`)."""

    def __init__(self, folder: Location, keep: int = 2,
                 max_failed_writes: int = DEFAULT_MAX_FAILED_WRITES,
                 warn: Callable[[str], None] = print) -> None:
        self.folder, self.keep = folder, keep
        self.failures = FailedWrites(max_failed_writes, warn)

    def save(self, epoch: int, state: dict[str, Any]) -> bool:
        """Checkpoint ``epoch`` (its end, or a preemption's step in it), then drop all but
        the newest ``keep``. False when the write failed: the checkpoints there stay as they
        were (this epoch's earlier one too), none is dropped."""
        manifest_at = self._manifest(epoch)
        name = None
        try:
            previous = self._state_of(epoch)
            name = _plain_state(epoch) if previous is None else \
                f"epoch-{epoch:04d}-{uuid.uuid4().hex[:8]}.pt"
            write_checkpoint(self.folder.join(name), manifest_at, state,
                             {"epoch": epoch, "state": name})
        except StorageError as e:
            if name is not None:
                self._delete(name)  # what a failed write left: a state no manifest names
            self.failures.failed(f"the checkpoint of epoch {epoch}", self.folder.uri, e,
                                 self._latest_saved())
            return False
        self.failures.written()
        if previous not in (None, name):
            self._delete(previous)
        for old in self.epochs()[self.keep:]:
            doomed = self._state_of(old) or _plain_state(old)
            self.folder.fs.delete_file(self._manifest(old).path)  # first: no half pair counts
            self._delete(doomed)
        return True

    def _delete(self, name: str) -> None:
        """Delete a state file, as far as the store lets us: a full disk or a failing store
        may not, and a state no manifest names never counts anyway."""
        with contextlib.suppress(OSError):
            self.folder.fs.delete_file(self.folder.join(name).path)

    def _latest_saved(self) -> str | None:
        """"epoch N" of the newest checkpoint with a manifest, as far as the store says."""
        try:
            epochs = self.epochs()
        except StorageError:
            return None
        return f"epoch {epochs[0]}" if epochs else None

    def epochs(self) -> list[int]:
        """Epochs with a checkpoint manifest, newest first."""
        found = (EPOCH_MANIFEST.fullmatch(name) for name in self.folder.list_files(".json"))
        return sorted((int(m.group(1)) for m in found if m), reverse=True)

    def load_latest(self, warn: Callable[[str], None]) -> dict[str, Any] | None:
        """The newest intact checkpoint's state; None while there is none."""
        return newest_intact(self.epochs(), self._load, warn, self.folder.uri,
                             "delete that folder to train afresh")

    def _load(self, epoch: int) -> dict[str, Any]:
        state = self._state_of(epoch) or _plain_state(epoch)
        return read_checkpoint(self.folder.join(state), self._manifest(epoch))

    def _manifest(self, epoch: int) -> Location:
        return self.folder.join(f"epoch-{epoch:04d}.json")

    def _state_of(self, epoch: int) -> str | None:
        """The state file ``epoch``'s manifest names (the plain name if it names none or
        cannot be parsed: the hash check then tells whether that one is it); None when the
        epoch has no manifest."""
        try:
            raw = self._manifest(epoch).read_bytes()
        except PathNotFoundError:
            return None
        try:
            name = json.loads(raw).get("state")
        except (ValueError, AttributeError):
            name = None
        # A name of ours only: a manifest never points outside its folder.
        return name if isinstance(name, str) and STATE_NAME.fullmatch(name) else \
            _plain_state(epoch)


def _plain_state(epoch: int) -> str:
    return f"epoch-{epoch:04d}.pt"
