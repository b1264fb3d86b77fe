"""data.record_tiles: the tile ids a worker trained on, carried through its batches as
bytes and written to the run folder per logged step."""

from __future__ import annotations

import json

import numpy as np
import torch

from mpmae.data.stream.tile_dataset import TILE_ID_COLUMN, TileCollate
from mpmae.storage import resolve
from mpmae.train.tile_record import RECORD_DIR, TileRecord


def _batch(ids: list[str]) -> dict[str, torch.Tensor]:
    n = len(ids)
    return TileCollate()({"sentinel2": np.zeros((n, 2, 4, 4), np.uint16),
                          "s2_type": np.array(["l1c"] * n, dtype=object),
                          TILE_ID_COLUMN: np.array(ids, dtype=object)})


def test_a_batch_carries_its_tile_ids_as_a_tensor_the_record_reads_back(tmp_path):
    batch = _batch(["t-1", "tile-22", "é"])
    # Tensors only: Ray moves such a batch to the training device as a whole.
    assert all(isinstance(v, torch.Tensor) for v in batch.values())
    record = TileRecord(resolve(str(tmp_path)), rank=1, node_id="n1")
    raw = record.take(batch)
    assert TILE_ID_COLUMN not in raw and "sentinel2" in raw
    record.take(_batch(["t-4"]))
    record.write(step=2, epoch=0)
    record.write(step=3, epoch=0)  # nothing taken since: no file
    (name,) = [p.name for p in (tmp_path / RECORD_DIR).iterdir()]
    assert name == f"rank1-{record.attempt}-step000002.json"
    saved = json.loads((tmp_path / RECORD_DIR / name).read_text())
    assert saved["tiles"] == ["t-1", "tile-22", "é", "t-4"]
    assert (saved["rank"], saved["node_id"], saved["step"], saved["epoch"]) == (1, "n1", 2, 0)
    # A restarted worker redoes steps in files of its own.
    assert TileRecord(resolve(str(tmp_path)), rank=1, node_id="n1").attempt != record.attempt


def test_without_the_flag_nothing_is_written_and_ids_still_leave_the_batch(tmp_path):
    record = TileRecord(None, rank=0, node_id="n0")
    assert TILE_ID_COLUMN not in record.take(_batch(["a"]))
    record.write(step=1, epoch=0)
    assert list(tmp_path.iterdir()) == []
