"""What ``mpmae data synth``, ``data synth-geobench2`` and ``data convert`` accept: one
schema for the command's flags, its ``--help-config`` and the library functions' defaults.

Kept free of numpy, h5py and Ray: the CLI imports it to build its parser on every start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mpmae.config import doc, require

Split = Literal["train", "val", "test"]  # the splits of an MMEarth release's splits.json


@dataclass(frozen=True)
class SynthConfig:
    tiles: int = field(default=1024, metadata=doc("Pretraining tiles to write"))
    size: int = field(default=64, metadata=doc("Tile side in pixels (8 or more)"))
    seed: int = field(default=0, metadata=doc(
        "Random seed: the same options give byte-identical tile values"))
    downstream_tiles: int | None = field(default=None, metadata=doc(
        "Labelled tiles for probing, written to downstream/; null: a quarter of tiles "
        "(at least 32); 0: none"))
    tiles_per_shard: int = field(default=512, metadata=doc("Tiles per Parquet shard"))
    overwrite: bool = field(default=False, metadata=doc(
        "Replace a dataset at DEST made with other options (kept readable until the new "
        "one is complete); false: refuse"))

    def validate(self) -> None:
        require(self.tiles >= 1, "tiles", f"must be 1 or more, got {self.tiles}")
        require(self.size >= 8, "size", f"must be 8 pixels or more, got {self.size}")
        require(self.downstream_tiles is None or self.downstream_tiles >= 0,
                "downstream_tiles", f"must be 0 (none) or more, got {self.downstream_tiles}")
        require(self.tiles_per_shard >= 1, "tiles_per_shard",
                f"must be 1 or more, got {self.tiles_per_shard}")

    def labelled_tiles(self) -> int:
        """``downstream_tiles`` with null resolved."""
        if self.downstream_tiles is None:
            return max(self.tiles // 4, 32)
        return self.downstream_tiles


@dataclass(frozen=True)
class SynthGeoBench2Config:
    """``mpmae data synth-geobench2``: the synthetic world as tiny GEO-Bench-2 datasets."""

    tiles: int = field(default=120, metadata=doc("Samples per dataset"))
    size: int = field(default=32, metadata=doc("Pixels per side of every sample"))
    seed: int = field(default=0, metadata=doc("The synthetic world's seed"))

    def validate(self) -> None:
        require(self.tiles >= 3, "tiles", "must be 3 or more (train, validation, test)")
        require(self.size >= 8, "size", "must be 8 or more")


@dataclass(frozen=True)
class ConvertConfig:
    split: Split | None = field(default=None, metadata=doc(
        "Convert only this split; null: every split in splits.json"))
    limit: int | None = field(default=None, metadata=doc(
        "Convert only the first N tiles of each split (splits.json order); null: all"))
    shard_mb: float = field(default=128, metadata=doc(
        "Target shard size in MB of raw tile bytes"))
    seed: int = field(default=0, metadata=doc(
        "Seed of the per-split permutation that shuffles tiles across shards"))
    parallel: bool = field(default=True, metadata=doc(
        "Write shards as Ray tasks (a local Ray is started if none is); false: in this "
        "process"))
    num_workers: int | None = field(default=None, metadata=doc(
        "Shard-writing tasks in flight; null: the cluster's CPUs"))
    overwrite: bool = field(default=False, metadata=doc(
        "Replace a dataset at DEST converted with other options (kept readable until the "
        "new one is complete); false: refuse, and a re-run with the same options completes "
        "it, keeping the shards already written"))

    def validate(self) -> None:
        require(self.limit is None or self.limit >= 1, "limit",
                f"must be at least 1 tile per split, or null for all; got {self.limit}")
        require(self.shard_mb > 0, "shard_mb", f"must be positive, got {self.shard_mb}")
        require(self.num_workers is None or self.num_workers >= 1, "num_workers",
                f"must be 1 or more, or null for the cluster's CPUs; got {self.num_workers}")
