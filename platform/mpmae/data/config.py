"""The ``data`` config section: which tiles a run trains on and how the stream reads them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mpmae.config import doc, require
from mpmae.data.sources.config import SynthConfig


@dataclass(frozen=True)
class DataConfig:
    uri: str = field(default="", metadata=doc(
        "Dataset folder or s3:// URI (Parquet shards + dataset.json); empty: a synthetic "
        "dataset generated on first use in <cache>"))
    synth_tiles: int = field(default=SynthConfig.tiles, metadata=doc(
        "Tiles in the synthetic dataset"))
    tile_size: int = field(default=SynthConfig.size, metadata=doc(
        "Tile side in pixels; the synthetic dataset is generated at this size"))
    split: str = field(default="train", metadata=doc("Split to pretrain on"))
    shuffle_buffer: int = field(default=0, metadata=doc(
        "Rows in each worker's local shuffle buffer; 0: none (read tasks already shuffle "
        "tiles from random row groups of several shards, anew each epoch)"))
    on_bad_shard: Literal["stop", "skip"] = field(default="stop", metadata=doc(
        "A shard found damaged while streaming (a page checksum fails): stop the run "
        "naming it, or skip its damaged row groups with a warning naming it"))
    keep_freed_memory: bool = field(default=True, metadata=doc(
        "Read tasks run in workers whose malloc and Arrow pool keep the memory they free "
        "for the next block (~1.26x less CPU a tile, docs/scale.md §4); each such worker "
        "stays near its peak memory. false: Ray's default workers"))
    probe_uri: str = field(default="", metadata=doc(
        "Labelled set (train/test splits, a label column) for the linear probe of "
        "train.probe_every; empty: <data.uri>/downstream if it exists"))
    record_tiles: bool = field(default=False, metadata=doc(
        "Write the ids of the tiles each training worker trains on to <run>/tiles/ (one "
        "JSON file per worker and logged step, with its node): which worker saw which "
        "tile, e.g. to check a resumed or restarted run's data; costs a write per log"))

    def validate(self) -> None:
        require(self.synth_tiles > 0, "synth_tiles", "must be positive")
        require(self.tile_size > 0, "tile_size", "must be positive")
        require(self.shuffle_buffer >= 0, "shuffle_buffer", "must be 0 or more")
