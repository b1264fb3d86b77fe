"""Where a re-started run picks up: which checkpoint, and where in the data it was.

The workers resume from the run folder's newest checkpoint (which Ray Train may not have
registered yet). If that one is damaged or incomplete, they go on to the folder's earlier
checkpoints (newest first) instead of failing, so the advice after a failure is only ever
"run the same command again". The stream is built from the newest checkpoint's manifest
at every start of the worker group (:class:`ResumingStream`): a resumed command and a
group restarted after a failure alike get the interrupted epoch's row-group order and
skip the tiles it already trained on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import torch

from mpmae.data.stream.retry_tally import RetryTally
from mpmae.data.stream.tile_dataset import TILE_ID_COLUMN, TileDataset
from mpmae.data.stream.worker_memory import READ_TASK_ENV
from mpmae.storage import Location
from mpmae.train.checkpoint import FOLDER_PREFIX, MANIFEST_FILE, load_checkpoint
from mpmae.train.config import PretrainConfig
from mpmae.train.engine.checkpoint_store import newest_intact


@dataclass(frozen=True)
class DataPosition:
    """The epoch a run is in and the tiles (all workers together) it has trained on in it."""

    epoch: int = 0
    tiles: int = 0


@dataclass(frozen=True)
class StoredCheckpoint:
    folder: str  # relative to the run folder
    step: int
    position: DataPosition


def stored_checkpoints(run_dir: Location) -> list[StoredCheckpoint]:
    """The run folder's checkpoints that have a manifest, newest (highest step) first."""
    found = []
    for name in run_dir.list_files(suffix=MANIFEST_FILE):
        folder, _, file = name.partition("/")
        if not folder.startswith(FOLDER_PREFIX) or file != MANIFEST_FILE:
            continue
        try:
            manifest = json.loads(run_dir.join(folder, MANIFEST_FILE).read_bytes())
            step = int(manifest["step"])
        except (ValueError, KeyError, TypeError):
            continue  # a damaged manifest: the workers will pass over this one too
        position = DataPosition(int(manifest.get("epoch", 0)), int(manifest.get("epoch_tiles", 0)))
        found.append(StoredCheckpoint(folder, step, position))
    return sorted(found, key=lambda c: (c.step, c.folder), reverse=True)


def resume_position(run_dir: Location) -> DataPosition:
    """Where the newest checkpoint left the data (the start, for a new run)."""
    stored = stored_checkpoints(run_dir)
    return stored[0].position if stored else DataPosition()


@dataclass(frozen=True)
class ResumingStream:
    """The training split's stream, placed where the run folder's newest checkpoint left
    the data. Ray Train calls it at every start of the worker group: one restarted after a
    failure (a lost node, ``scaling.max_failures``) reads on from the checkpoint it
    resumes from, not from where the command started the run."""

    dataset: TileDataset
    cfg: PretrainConfig
    run_dir: Location
    retry_tally: RetryTally | None = None  # where its reads' storage retries are summed

    def __call__(self):
        """A Ray Dataset of the split from the newest checkpoint's position on."""
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False  # ours replace them
        tally = self.retry_tally
        send_retries = tally.sender() if tally is not None else lambda: None
        try:  # the manifest, footers and checkpoint reads made here count too
            cfg, position = self.cfg, resume_position(self.run_dir)
            return self.dataset.read(
                cfg.data.split, cfg.model.pretext_set, seed=cfg.train.seed,
                extra_columns=(TILE_ID_COLUMN,) if cfg.data.record_tiles else (),
                task_cpus=min(1.0, cfg.scaling.data_cpus) or 1.0, first_epoch=position.epoch,
                skip_tiles=position.tiles, on_bad_shard=cfg.data.on_bad_shard,
                retry_tally=tally,
                worker_env=READ_TASK_ENV if cfg.data.keep_freed_memory else {})
        finally:
            send_retries()


def load_resumable(latest, run_dir: Location, map_location: torch.device,
                   warn: Callable[[str], None]) -> dict | None:
    """The state of the run folder's newest intact checkpoint (Ray's ``latest``, a
    ``ray.train.Checkpoint`` or None, is one of them, or goes first if it lies elsewhere).
    None for a run that has none at all.

    Newest by step, not Ray's ``latest``: Ray registers a checkpoint a report or more after
    rank 0 wrote it, so a group restarted in between (a lost node) was handed the one
    before, while the stream (:class:`ResumingStream`) resumes at the newest."""
    from ray.train import Checkpoint

    stored = stored_checkpoints(run_dir)
    latest_name = None if latest is None else latest.path.rstrip("/").rsplit("/", 1)[-1]
    candidates = [Checkpoint(run_dir.join(c.folder).path, filesystem=run_dir.fs)
                  for c in stored]
    if latest is not None and latest_name not in {c.folder for c in stored}:
        candidates.insert(0, latest)

    def load(checkpoint) -> dict:
        with checkpoint.as_directory() as folder:
            return load_checkpoint(folder, map_location=map_location)

    return newest_intact(candidates, load, warn, run_dir.uri, "restore the folder from a "
                         "copy, or start afresh under a new run_name")
