"""A crop taken in the read task (``TileDataset.read(crop=…)``, off by default): one
window per tile, shared by every pixel modality of that tile, cut while the block is
being copied anyway (the shuffle's scatter), so the object store, the consumer, the
host→GPU copy and the normaliser move 56² instead of 64² pixels per band (−23 %).
Training does not use it: measured on 2 CPU cores it cut the normaliser's CPU by ~30 %
but added more in the read tasks than it saved downstream (docs/data-plane.md).

The windows are random from the read task's generator (seeded by seed, epoch and task,
so a run is reproducible) or, without one, the centre window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mpmae.data.format.manifest import DatasetError
from mpmae.modalities import MODALITIES


def is_pixel_column(name: str) -> bool:
    return name in MODALITIES and MODALITIES[name].kind.is_pixel


def checked_crop(crop: int | None, tile_size: int | None) -> int | None:
    """``crop`` as the read tasks take it: None where it keeps the whole tile (or there
    are no pixel columns to cut)."""
    if crop is None or tile_size is None or crop == tile_size:
        return None
    if not 0 < crop < tile_size:
        raise DatasetError(f"the {crop}px crop does not fit the dataset's {tile_size}px "
                           f"tiles: use an input size of at most {tile_size}px")
    return crop


@dataclass(frozen=True)
class Windows:
    """The top-left corner of each tile's window, in the block's stored order."""

    top: list[int]
    left: list[int]
    size: int

    @classmethod
    def draw(cls, tiles: int, tile_size: int, crop: int,
             rng: np.random.Generator | None) -> Windows:
        if rng is None:
            corner = [(tile_size - crop) // 2] * tiles
            return cls(corner, corner, crop)
        top, left = rng.integers(0, tile_size - crop + 1, (2, tiles))
        return cls(top.tolist(), left.tolist(), crop)

    def scatter(self, values: np.ndarray, out: np.ndarray, rows: np.ndarray,
                first: int) -> None:
        """``out[rows[i]] = window of values[i]`` for the tiles ``first, first + 1, …``:
        a slice per tile, one copy (a fancy-indexed gather over a sliding-window view
        took ~3× as long, 64→56 px, one thread)."""
        k, last = self.size, first + len(values)
        for tile, row, t, c in zip(values, rows.tolist(), self.top[first:last],
                                   self.left[first:last], strict=True):
            out[row] = tile[:, t : t + k, c : c + k]
