"""The Ray Data stream: a tile dataset URI → batches of raw torch tensors on the device.

Shuffling never moves the whole dataset: shards were shuffled when written, the order of
their row groups is permuted anew every epoch and each read task shuffles its tiles
(:mod:`mpmae.data.stream.row_group_source`); a local shuffle buffer on the consumer is optional.
Only the columns the pretext set needs are read, and values stay in their stored dtypes
until the :class:`~mpmae.data.stream.normalise.Normaliser`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import torch
from ray.data.collate_fn import NumpyBatchCollateFn
from ray.exceptions import RayTaskError

from mpmae.data.format.manifest import DatasetError, Manifest, read_manifest
from mpmae.data.format.shards import SchemaCheck, check_present, read_footer, row_group_tiles
from mpmae.data.stream.normalise import S2_LEVEL_COLUMN
from mpmae.data.stream.retry_tally import RetryTally
from mpmae.data.stream.row_group_source import (
    BLOCKS_PER_TASK,
    TILES_PER_BLOCK,
    OnBadShard,
    RowGroupSource,
)
from mpmae.data.stream.stage_clock import StageClock
from mpmae.data.stream.worker_memory import READ_TASK_ENV
from mpmae.errors import MpmaeError
from mpmae.modalities import PretextSet
from mpmae.ray_fixes.block_size import pass_blocks_as_yielded
from mpmae.ray_fixes.stream_callbacks import install as install_stream_fixes
from mpmae.storage import Location, StorageOptions, resolve

# Footers read at once (older manifests only, which record no row groups): each read waits
# a round trip to the store (30 ms on S3), not the CPU, so start-up at thousands of shards
# is bound by how many are in flight (benchmarks/bench_startup.py).
FOOTER_READERS = 64


@dataclass
class TileDataset:
    """An opened tile dataset: where it lives and what its manifest says."""

    root: Location
    manifest: Manifest
    # split → shard path → tiles of each row group: all the driver keeps of the shards.
    # Holding their footers (~211 KB a 1,000-tile shard) was most of the driver's growth:
    # +512 MB at 1M tiles, +188 MB without (benchmarks/bench_scale.py, docs/scale.md).
    _row_groups: dict[str, dict[str, list[int]]] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, where: Location | str, storage: StorageOptions | None = None,
             check: bool = True) -> TileDataset:
        """Read ``dataset.json`` at ``where``, a location the caller resolved (a run's
        driver does, once) or a URI resolved here with ``storage``; with ``check``, check
        now that every shard is there, of the size dataset.json says (else on first use)."""
        root = where if isinstance(where, Location) else resolve(where, storage)
        ds = cls(root, read_manifest(root))
        if check:
            ds.check()
        return ds

    def check(self, splits: Iterable[str] | None = None) -> None:
        """Check the shards of ``splits`` (all by default): a missing shard, or one of
        another size than dataset.json says, is named before any read task starts. Each
        read task checks the footers of the shards it opens against dataset.json."""
        self._find_row_groups(splits or self.manifest.splits)

    def shard_paths(self, split: str) -> list[str]:
        return [self.root.join(*s.path.split("/")).path for s in self.manifest.shards(split)]

    def require(self, pretext: PretextSet) -> None:
        missing = [t for t in pretext.tasks if t not in self.manifest.modalities]
        if missing:
            raise DatasetError(
                f"pretext set '{pretext.name}' needs {missing}, which {self.root.uri} does not "
                f"hold (it has {self.manifest.modalities}); choose a smaller pretext set"
            )

    def row_groups(self, split: str) -> dict[str, list[int]]:
        """The tiles of each row group of each of ``split``'s shards, by manifest path, its
        shards checked (:meth:`check`): what read tasks are planned from."""
        self._find_row_groups([split])
        return self._row_groups[split]

    def _find_row_groups(self, splits: Iterable[str]) -> None:
        """The row groups of those of ``splits`` not done yet. Recorded in dataset.json:
        one listing of each shard folder checks that the shards are there, of their sizes
        (no footer read). Not recorded (older manifests): every footer is read, checked
        (:func:`~mpmae.data.format.shards.read_footer`, one request each, in parallel) and
        only its row groups' tile counts kept."""
        todo = [s for s in dict.fromkeys(splits) if s not in self._row_groups]
        shards = [info for split in todo for info in self.manifest.shards(split)]
        check_present(self.root, [info for info in shards if info.row_groups])
        older = [info for info in shards if not info.row_groups]
        schema = SchemaCheck(self.manifest.schema())
        read = in_parallel(lambda info: row_group_tiles(read_footer(self.root, info, schema)),
                           older)
        found = {info.path: groups for info, groups in zip(older, read, strict=True)}
        for split in todo:
            self._row_groups[split] = {info.path: info.row_groups or found[info.path]
                                       for info in self.manifest.shards(split)}

    def read(self, split: str, pretext: PretextSet, seed: int | None = 0,
             extra_columns: tuple[str, ...] = (), task_cpus: float = 1.0,
             on_bad_shard: OnBadShard = "stop", first_epoch: int = 0, skip_tiles: int = 0,
             crop: int | None = None, stage_clock: StageClock | None = None,
             retry_tally: RetryTally | None = None, tiles_per_block: int = TILES_PER_BLOCK,
             blocks_per_task: int = BLOCKS_PER_TASK,
             worker_env: dict[str, str] | None = READ_TASK_ENV):
        """A Ray Dataset of ``split`` with the columns ``pretext`` needs, in a new row-group
        order every epoch (none with ``seed=None``).

        ``task_cpus``: CPUs each read task asks for; below 1 when training reserved only a
        fraction of a CPU for data, or the reads could never be scheduled.
        ``on_bad_shard``: a row group that does not decode stops the stream naming its
        shard (``stop``) or is left out with a warning naming it (``skip``).
        ``first_epoch``, ``skip_tiles``: where a resumed run is in its data (see
        :mod:`mpmae.data.stream.row_group_source`).
        ``crop``: each tile's pixel modalities cut to one ``crop``² window in the read task,
        random per tile (centred with ``seed=None``; :mod:`mpmae.data.stream.tile_crop`).
        ``stage_clock``: benchmarks only, see :mod:`mpmae.data.stream.stage_clock`.
        ``retry_tally``: where the read tasks send their storage retries
        (:mod:`mpmae.data.stream.retry_tally`).
        ``tiles_per_block``, ``blocks_per_task``: the read tasks' layout
        (:class:`~mpmae.data.stream.row_group_source.RowGroupSource`).
        ``worker_env``: environment variables of the read tasks' worker processes (Ray
        starts workers of their own for them): by default malloc settings that keep freed
        memory (:mod:`mpmae.data.stream.worker_memory`); empty: Ray's default workers.
        """
        import ray.data

        self.require(pretext)
        schema = self.manifest.schema()
        columns = [*pretext.columns, *extra_columns]
        source = RowGroupSource(self.root, self.row_groups(split),
                                pa.schema([schema.field(c) for c in columns]), seed=seed,
                                on_bad_shard=on_bad_shard, first_epoch=first_epoch,
                                skip_tiles=skip_tiles, crop=crop, stage_clock=stage_clock,
                                retry_tally=retry_tally, tiles_per_block=tiles_per_block,
                                blocks_per_task=blocks_per_task)
        install_stream_fixes(ray.data.DataContext.get_current())
        data = ray.data.read_datasource(source, num_cpus=task_cpus,
                                        override_num_blocks=source.num_tasks,
                                        runtime_env={"env_vars": worker_env} if worker_env
                                        else None)
        pass_blocks_as_yielded(data.context, source.target_max_block_size)  # this dataset's
        return data


def in_parallel(read: Callable, items: list) -> list:
    """``read`` of each item, :data:`FOOTER_READERS` at a time, in order; an error cancels
    the reads not started and is raised."""
    with ThreadPoolExecutor(max_workers=max(1, min(FOOTER_READERS, len(items)))) as pool:
        futures = [pool.submit(read, item) for item in items]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        failed = [f.exception() for f in futures if f in done and f.exception() is not None]
        if failed:
            raise failed[0]
        return [future.result() for future in futures]


# Batches are views of Arrow's read-only buffers, and torch warns once per process that
# such tensors must not be written to. Nothing writes to them: the Normaliser makes every
# output afresh, and a GPU gets a copy. Copying them to silence it would cost a pass. The
# filter holds only for the warning our collate's from_numpy raises (module=this one).
warnings.filterwarnings("ignore", message="The given NumPy array is not writable",
                        category=UserWarning, module=re.escape(__name__))


TILE_ID_COLUMN = "tile_id"  # read only when asked for (``extra_columns``)


class TileCollate(NumpyBatchCollateFn):
    """numpy batch → dict of tensors in stored dtypes; the S2 level becomes a bool column,
    tile ids (if read) their UTF-8 bytes (:func:`tile_ids` reads them back)."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        out = {k: torch.from_numpy(np.ascontiguousarray(v))
               for k, v in batch.items() if k not in ("s2_type", TILE_ID_COLUMN)}
        out[S2_LEVEL_COLUMN] = torch.from_numpy(np.asarray(batch["s2_type"] == "l2a"))
        if TILE_ID_COLUMN in batch:
            out[TILE_ID_COLUMN] = _id_bytes(batch[TILE_ID_COLUMN])
        return out


def _id_bytes(ids: np.ndarray) -> torch.Tensor:
    """Strings as a (n, longest) uint8 tensor, zero-padded: a batch that holds only tensors
    is one Ray moves to the training device (a list of strings would keep it all on the
    host)."""
    encoded = np.char.encode(ids.astype(str), "utf-8")
    return torch.from_numpy(encoded.view(np.uint8).reshape(len(ids), -1).copy())


def tile_ids(encoded: torch.Tensor) -> list[str]:
    """The tile ids of a batch's :data:`TILE_ID_COLUMN` tensor."""
    return [bytes(row).rstrip(b"\0").decode() for row in encoded.cpu().numpy()]


def torch_batches(
    source,
    batch_size: int,
    shuffle_buffer: int = 0,
    seed: int | None = None,
    device: str | torch.device = "auto",
    drop_last: bool = True,
    prefetch_batches: int = 1,
) -> Iterable[dict[str, torch.Tensor]]:
    """Raw tensor batches from a Ray Dataset or a Train dataset shard (``DataIterator``).

    ``prefetch_batches``: batches Ray Data prepares ahead. Before the first batch of every
    epoch its iterator waits for that many batches' worth of blocks and one block more, so
    each one more delays every epoch's start by a block's read; the training loop keeps
    batches ahead across epochs itself (:mod:`mpmae.data.stream.epochs`).

    On the CPU the batches are views of the blocks in the object store (no copy). For a
    CUDA ``device`` they are copied once into pinned host memory in Ray Data's prefetch
    thread, so that the host→GPU copy (Ray's, ``non_blocking``) runs asynchronously.
    """
    return source.iter_torch_batches(
        batch_size=batch_size,
        local_shuffle_buffer_size=shuffle_buffer if shuffle_buffer >= batch_size else None,
        local_shuffle_seed=seed,
        collate_fn=TileCollate(),
        device=device,
        drop_last=drop_last,
        prefetch_batches=prefetch_batches,
        pin_memory=pins_memory(device),
    )


def pins_memory(device: str | torch.device) -> bool:
    """Whether batches for ``device`` go through pinned host memory: for an explicit CUDA
    device only ("auto" is resolved by Ray after this choice)."""
    return device != "auto" and torch.device(device).type == "cuda"


def guarded(batches: Iterable) -> Iterator:
    """``batches``; a read task's own error (it names the bad shard and row group) is
    re-raised as itself, without Ray's wrapper and its worker traceback. Nothing is re-read
    to find the shard."""
    try:
        yield from batches
    except RayTaskError as e:
        if isinstance(e.cause, MpmaeError):
            raise e.cause from None
        raise
