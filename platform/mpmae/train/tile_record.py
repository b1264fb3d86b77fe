"""``data.record_tiles``: each training worker writes the ids of the tiles it trained on to
the run folder, so which worker saw which tile can be checked after the fact (a tile seen
twice, or never, in an epoch; what a restart re-read).

One JSON file per worker and logged step, ``<run>/tiles/rank<R>-<attempt>-step<S>.json``,
holds the tiles of the steps since the worker's previous file. ``attempt`` is new for every
start of the worker (a restart after a failure redoes steps: its files do not overwrite
the first attempt's). Written at the logged steps, not at every step: one object store
write per log on S3.
"""

from __future__ import annotations

import json
import uuid

import torch

from mpmae.data.stream.tile_dataset import TILE_ID_COLUMN, tile_ids
from mpmae.storage import Location

RECORD_DIR = "tiles"


class TileRecord:
    """The tiles one worker trained on since its last write (nothing without a folder)."""

    def __init__(self, run_dir: Location | None, rank: int, node_id: str) -> None:
        self.folder = None if run_dir is None else run_dir.join(RECORD_DIR)
        self.rank, self.node_id = rank, node_id
        self.attempt = uuid.uuid4().hex[:8]
        self.pending: list[str] = []

    def take(self, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``raw`` without its tile ids, which are kept until the next write."""
        encoded = raw.pop(TILE_ID_COLUMN, None)
        if encoded is not None and self.folder is not None:
            self.pending += tile_ids(encoded)
        return raw

    def write(self, step: int, epoch: int) -> None:
        """Write the tiles taken since the last write as trained on by ``step``."""
        if self.folder is None or not self.pending:
            return
        record = {"rank": self.rank, "attempt": self.attempt, "node_id": self.node_id,
                  "step": step, "epoch": epoch, "tiles": self.pending}
        name = f"rank{self.rank}-{self.attempt}-step{step:06d}.json"
        self.folder.join(name).write_bytes_atomic(json.dumps(record).encode())
        self.pending = []
