"""Where a read task's CPU goes, for benchmarks: per block, the CPU seconds of its decode
(Parquet row groups → Arrow) and of its shuffle/copy (the scatter into the block).

Off unless a stream is given a clock (``TileDataset.read(stage_clock=…)``). Each read task
appends one line per block to a file of its worker process in ``folder``, which every read
task must be able to write: a benchmark on one machine. The times are the worker process's
CPU (``time.process_time``), so Parquet's decode threads are counted with the decode.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

STAGES = ("decode", "shuffle_copy")


@dataclass(frozen=True)
class StageClock:
    folder: str

    def add(self, tiles: int, decode_s: float, shuffle_s: float) -> None:
        """Record one block; a line per block, appended (one write, no partial lines).
        Not once the folder is gone: its benchmark has ended, and a read task of a stream
        it stopped early (at a cap) may still be reading."""
        path = Path(self.folder) / f"{os.getpid()}.txt"
        try:
            with open(path, "a") as f:
                f.write(f"{tiles} {decode_s:.9f} {shuffle_s:.9f}\n")
        except FileNotFoundError:
            pass

    def take(self) -> dict[str, float]:
        """Tiles and CPU seconds per stage recorded since the last ``take``; clears them."""
        out = dict.fromkeys(("tiles", *STAGES), 0.0)
        for path in Path(self.folder).glob("*.txt"):
            lines = path.read_text().splitlines()
            path.unlink()
            for line in lines:
                tiles, decode, shuffle = line.split()
                out["tiles"] += int(tiles)
                out["decode"] += float(decode)
                out["shuffle_copy"] += float(shuffle)
        return out
