"""A Ray Data datasource over a tile dataset's Parquet row groups, reordered every epoch.

Why not ``read_parquet``: in Ray 2.60 every execution (every epoch) re-runs a file-listing
operator and reads each shard whole in one task before its first block leaves, most of a
small epoch (measured: docs/ray-2.60.md). The manifest already lists the shards and the
tiles of their row groups, so a read task here is a few row groups that the driver knows
without reading any shard: the first batch arrives after a row group or two are read, not
a whole shard. Each read task reads the footers of the shards it opens and checks them
against dataset.json (row groups, the columns it reads): a shard that differs is named.

A task yields its tiles as several blocks of ~256, each as soon as it is read. A Ray
worker spends time between the end of one task's read and the start of the next (output,
completion, next submission), on a small machine about as long as reading one block
(measured: docs/ray-2.60.md); sixteen blocks per task pay that once per ~4096 tiles, and
the first block of a task still leaves after one block's read. Sixteen rather than four
cost 5-30 % less CPU per delivered tile in each of five runs, mostly in the task's own
decode and copy (benchmarks/bench_data.py ``--compare``, docs/scale.md §4).

A row group that does not decode (a page checksum fails, a shard is gone) stops the stream
with an error naming its shard, or with ``on_bad_shard="skip"`` is left out with a warning
naming it while the other row groups stream on; nothing else is re-read.

Shuffling: the row groups of all shards are permuted anew for every execution, seeded by
``(seed, execution number)``, and each block shuffles the tiles of its row groups
(drawn from different shards). Shards were shuffled when written, so every
batch is a fresh random draw each epoch without a shuffle buffer on the consumer, where
it would cost an extra copy of every tile on the training worker's CPU. An optional crop
(``crop``) is cut in the same copy (:mod:`mpmae.data.stream.tile_crop`).

A resumed run starts the stream at its epoch (``first_epoch``: that epoch's order, not
epoch 0's) and leaves out the leading row groups of that order that hold the tiles it had
already trained on (``skip_tiles``), so the rest of the interrupted epoch is read once.
Which tiles those were is exact up to the blocks in flight: Ray Data hands blocks on in
the order reads finish, not strictly in the permutation's order.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from mpmae.data.format.manifest import DatasetError
from mpmae.data.format.schema import schema_problems
from mpmae.data.format.shards import corrupt_data, mismatch, open_shard, row_group_problems
from mpmae.data.format.tile_array import TileType
from mpmae.data.stream.retry_tally import RetryTally
from mpmae.data.stream.stage_clock import StageClock
from mpmae.data.stream.tile_crop import Windows, checked_crop, is_pixel_column
from mpmae.storage import Location, retrying

LEADING_TASKS = 2  # one-row-group tasks that start every epoch
TILES_PER_BLOCK = 256
BLOCKS_PER_TASK = 16
# Opens shards side by side in each worker process (threads start on first use); pyarrow
# waits for the store without the GIL. 16: a block's row groups at the smallest shards.
_OPENERS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="mpmae-open")
OnBadShard = Literal["stop", "skip"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RowGroup:
    shard: str  # relative to the dataset root, '/'-separated
    index: int
    tiles: int


class RowGroupSource(Datasource):
    """Reads ``schema``'s columns of the row groups of the shards under ``root`` in
    ``row_groups`` (shard path → tiles of each of its row groups, as dataset.json says;
    each read task checks the footers it reads against them). ``tiles_per_block``: how
    many tiles are shuffled together into one block (bigger amortises per-block costs,
    smaller starts the stream sooner);
    ``blocks_per_task``: how many blocks one read task yields in turn; ``on_bad_shard``:
    what a row group that does not decode does (``stop`` the stream, or ``skip`` it);
    ``crop``: the side of the window each tile's pixel modalities are cut to in the read
    task (:mod:`mpmae.data.stream.tile_crop`; None: whole tiles);
    ``stage_clock``: where read tasks record their stages' CPU (benchmarks only);
    ``retry_tally``: where read tasks send the storage retries they counted
    (:mod:`mpmae.data.stream.retry_tally`; None: nowhere)."""

    def __init__(self, root: Location, row_groups: dict[str, Sequence[int]], schema: pa.Schema,
                 seed: int | None = 0, tiles_per_block: int = TILES_PER_BLOCK,
                 blocks_per_task: int = BLOCKS_PER_TASK, on_bad_shard: OnBadShard = "stop",
                 first_epoch: int = 0, skip_tiles: int = 0, crop: int | None = None,
                 stage_clock: StageClock | None = None,
                 retry_tally: RetryTally | None = None) -> None:
        super().__init__()
        self.row_groups = [RowGroup(shard, i, tiles) for shard, groups in row_groups.items()
                           for i, tiles in enumerate(groups)]
        if not self.row_groups:
            raise DatasetError(f"no tiles to read in {root.uri}")
        # Once: every read task asks, and a pass over all row groups each time made planning
        # an epoch grow as row groups x tasks (0.39 s a plan at 1M tiles, four plans before
        # the first batch; benchmarks/bench_scale.py, resume_plan_s).
        self.largest_group = max(g.tiles for g in self.row_groups)
        self.root = root
        self.shards = {shard: tuple(groups) for shard, groups in row_groups.items()}
        self.schema = schema
        self.crop = checked_crop(crop, _tile_size(schema))
        self.block_schema = block_schema(schema, self.crop)
        self.seed = seed
        self.tiles_per_block = tiles_per_block
        self.blocks_per_task = blocks_per_task
        self.skip_bad = on_bad_shard == "skip"
        self.first_epoch = first_epoch
        self.skip_tiles = skip_tiles
        self.stage_clock = stage_clock
        self.retry_tally = retry_tally
        self.executions = 0

    def get_name(self) -> str:
        return "TileRowGroups"

    def estimate_inmemory_data_size(self) -> int:
        return sum(g.tiles for g in self.row_groups) * tile_nbytes(self.block_schema)

    @property
    def groups_per_block(self) -> int:
        return max(1, round(self.tiles_per_block / self.largest_group))

    @property
    def target_max_block_size(self) -> int:
        """The ``DataContext.target_max_block_size`` under which Ray Data passes this
        source's blocks on as they are yielded. Ray Data merges yielded blocks until they
        exceed it (a copy of every tile, and the first block waits for the second) and
        slices blocks of 1.5× it: so between a full block's bytes / 1.5 and the bytes of
        all but the smallest blocks (a shard's last row group may be short)."""
        tiles = self.groups_per_block * self.largest_group
        return int(0.7 * tiles * tile_nbytes(self.block_schema))

    @property
    def num_tasks(self) -> int:
        """Read tasks per execution: pass it as ``override_num_blocks``, or Ray Data splits
        every row group into many small blocks to reach its default of 200."""
        per_task = self.groups_per_block * self.blocks_per_task
        leading = min(LEADING_TASKS, len(self.row_groups))
        return leading + math.ceil((len(self.row_groups) - leading) / per_task)

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context=None) -> list[ReadTask]:
        """The read tasks of the next execution (epoch). Ray Data also calls this while it
        plans (``read_datasource``, then its optimizer: three calls before the first
        execution, one before each later one), without a ``data_context``; only its
        executor passes one, once per execution. So only those calls count an execution:
        counting every call made a resumed run's first execution the fourth, which read
        the whole epoch in another epoch's order instead of the rest of the one it left
        (measured: benchmarks/bench_scale.py, ``resume``)."""
        execution = self.executions
        if data_context is not None:
            self.executions += 1
        epoch = self.first_epoch + execution
        groups = self.order(epoch)
        if execution == 0:
            groups = _without_leading(groups, self.skip_tiles)
        return [self._task(chunk, self._rng(epoch, task), per_task_row_limit)
                for task, chunk in enumerate(self._chunks(groups))]

    def _chunks(self, groups: list[RowGroup]) -> list[list[RowGroup]]:
        """The first tasks read one row group each: at every epoch start the trainer waits
        for the first blocks (before its first batch, Ray Data's iterator takes in
        ``prefetch_batches`` batches' worth and then one block more: two blocks with
        :func:`~mpmae.data.stream.tile_dataset.torch_batches`). Two small blocks read side
        by side arrive much sooner than one full-size block."""
        k, n = LEADING_TASKS, self.groups_per_block * self.blocks_per_task
        return [*([g] for g in groups[:k]), *(groups[i : i + n] for i in range(k, len(groups), n))]

    def order(self, execution: int) -> list[RowGroup]:
        """The row groups in the order of the given execution (epoch)."""
        if self.seed is None:
            return list(self.row_groups)
        order = np.random.default_rng((self.seed, execution)).permutation(len(self.row_groups))
        return [self.row_groups[i] for i in order]

    def _rng(self, execution: int, task: int) -> np.random.Generator | None:
        return None if self.seed is None else np.random.default_rng((self.seed, execution, task))

    def _task(self, groups: list[RowGroup], rng: np.random.Generator | None,
              row_limit: int | None) -> ReadTask:
        tiles = sum(g.tiles for g in groups)
        meta = BlockMetadata(
            num_rows=tiles, size_bytes=tiles * tile_nbytes(self.block_schema), exec_stats=None,
            input_files=tuple(sorted({self.root.join(*g.shard.split("/")).path
                                      for g in groups})))
        root, columns, n = self.root, self.schema.names, self.groups_per_block
        expected = Expected({g.shard: self.shards[g.shard] for g in groups}, self.schema)
        skip, clock, crop, tally = self.skip_bad, self.stage_clock, self.crop, self.retry_tally

        def blocks() -> Iterator[pa.Table]:
            send_retries = tally.sender() if tally is not None else lambda: None
            opened: dict[str, pq.ParquetFile | DatasetError] = {}  # a shard's footer once a task
            for i in range(0, len(groups), n):
                start = time.process_time()
                try:
                    table = read_row_groups(root, expected, groups[i : i + n], columns, skip,
                                            opened)
                finally:  # a read that gave up counted "failed": sent before it is raised
                    send_retries()
                if table is not None:
                    read = time.process_time()
                    block = shuffled(table, rng, crop)
                    if clock is not None:
                        clock.add(len(block), read - start, time.process_time() - read)
                    yield block

        return ReadTask(blocks, meta, schema=self.block_schema,
                        per_task_row_limit=row_limit)


def _without_leading(groups: list[RowGroup], tiles: int) -> list[RowGroup]:
    """``groups`` less the leading ones that hold no more than ``tiles`` tiles in all."""
    done = 0
    for i, group in enumerate(groups):
        if done + group.tiles > tiles:
            return groups[i:]
        done += group.tiles
    return []


@dataclass(frozen=True)
class Expected:
    """What a read task's shards must hold, as dataset.json says: the tiles of each row
    group, by shard (checked against each footer the task reads), and the columns read,
    ``schema`` (checked against each table read: 0.015 ms a row group, where comparing
    footer schemas cost ~0.4 ms a shard opened, most tasks opening a shard a row group;
    pyarrow leaves a missing column out of the table without an error)."""

    row_groups: dict[str, tuple[int, ...]]
    schema: pa.Schema

    def check_footer(self, root: Location, name: str, shard: pq.ParquetFile) -> None:
        """Raise the one-line error naming shard ``name`` if its row groups differ."""
        problems = row_group_problems(shard.metadata, self.row_groups[name])
        if problems:
            raise mismatch(root, name, problems)

    def check_table(self, root: Location, name: str, table: pa.Table) -> pa.Table:
        """``table`` (read from shard ``name``), or the one-line error naming the shard if
        its columns are not those of ``schema``."""
        problems = schema_problems(table.schema, self.schema)
        if problems:
            raise mismatch(root, name, problems)
        return table


def read_row_groups(root: Location, expected: Expected, groups: list[RowGroup],
                    columns: list[str], skip_bad: bool = False,
                    opened: dict[str, pq.ParquetFile | DatasetError] | None = None,
                    ) -> pa.Table | None:
    """The row groups as one table (None: all skipped). A row group that does not decode,
    or whose shard (footer or columns) differs from ``expected``, raises an error naming its
    shard, or with ``skip_bad`` is left out with a warning. ``opened``: the shards opened
    so far (added to here), so a task whose blocks share a shard reads its footer once."""
    files = {} if opened is None else opened
    todo = [s for s in dict.fromkeys(g.shard for g in groups) if s not in files]
    files.update(_open_all(root, expected, todo))
    tables = []
    for g in groups:
        try:
            shard = files[g.shard]
            if isinstance(shard, DatasetError):
                raise shard
            tables.append(expected.check_table(root, g.shard, _read(root, shard, g, columns)))
        except DatasetError as e:
            if not skip_bad:
                raise
            log.warning("skipped %d tiles (data.on_bad_shard=skip): %s", g.tiles, e)
    return pa.concat_tables(tables) if tables else None


def _open_all(root: Location, expected: Expected,
              names: list[str]) -> dict[str, pq.ParquetFile | DatasetError]:
    """Each shard opened, its footer checked (or why it cannot be read). On object storage
    they are opened side by side: each open waits two round trips (a HEAD, the footer's
    GET), and one after another they made a read task on a 30 ms S3 wait for a shard per
    row group (the stream: 405 → 259 tiles/s at 1,001 shards, benchmarks/bench_scale.py)."""
    def one(name: str) -> pq.ParquetFile | DatasetError:
        try:
            shard = open_shard(root, name)
            expected.check_footer(root, name, shard)
        except DatasetError as e:  # named, and left out or raised by the row group's read
            return e
        return shard

    opened = _OPENERS.map(one, names) if root.is_s3 and len(names) > 1 else map(one, names)
    return dict(zip(names, opened, strict=True))


def _read(root: Location, shard: pq.ParquetFile, g: RowGroup, columns: list[str]) -> pa.Table:
    # A throttle or an outage is retried, then raised as a StorageError: never taken for a
    # damaged row group (which data.on_bad_shard=skip would leave out).
    try:
        return retrying(root.join(g.shard), lambda: shard.read_row_group(g.index,
                                                                         columns=columns))
    except (pa.ArrowException, OSError) as e:
        raise corrupt_data(root, g.shard, e, where=f" in row group {g.index}") from None


def shuffled(table: pa.Table, rng: np.random.Generator | None,
             crop: int | None = None) -> pa.Table:
    """``table``'s rows in a random order (as read without ``rng``), array columns as
    ``fixed_shape_tensor`` whichever the format version (what Ray Data hands on as
    ndarrays); with ``crop``, pixel columns cut to one ``crop``² window per tile, random
    (centred without ``rng``). Array columns are scattered chunk by chunk into one new
    array: a single copy, where Arrow's ``take`` on fixed-shape tensors is much slower and
    combining chunks first would copy twice."""
    schema = block_schema(table.schema, crop)
    if rng is None and crop is None:
        return pa.table([_as_tensor(col) for col in table.columns], schema=schema)
    n = table.num_rows
    order = np.arange(n) if rng is None else rng.permutation(n)
    destination = np.empty_like(order)
    destination[order] = np.arange(n)
    windows = None if crop is None else Windows.draw(n, _tile_size(table.schema), crop, rng)
    columns = [_scattered(col, destination, windows if is_pixel_column(name) else None)
               if _is_array(col.type) else col.take(order)
               for name, col in zip(table.column_names, table.columns, strict=True)]
    return pa.table(columns, schema=schema)


def block_schema(schema: pa.Schema, crop: int | None = None) -> pa.Schema:
    """The schema of the blocks a read task yields from shards of ``schema``."""
    return pa.schema([pa.field(f.name, _tensor_type(f.type, crop if is_pixel_column(f.name)
                                                    else None))
                      if _is_array(f.type) else f for f in schema])


def _tile_size(schema: pa.Schema) -> int | None:
    """The side of the pixel columns' tiles (None: no pixel column)."""
    sizes = {f.type.shape[-1] for f in schema if is_pixel_column(f.name) and _is_array(f.type)}
    return sizes.pop() if sizes else None


def _tensor_type(t: pa.DataType, crop: int | None = None) -> pa.DataType:
    shape = list(t.shape) if crop is None else [*t.shape[:-2], crop, crop]
    return pa.fixed_shape_tensor(_value_type(t), shape)


def _is_array(t: pa.DataType) -> bool:
    return isinstance(t, (pa.FixedShapeTensorType, TileType))


def _value_type(t: pa.DataType) -> pa.DataType:
    if isinstance(t, TileType):
        return pa.from_numpy_dtype(np.dtype(t.dtype))
    return t.value_type


def _as_tensor(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """An array column as ``fixed_shape_tensor`` chunks viewing the same bytes."""
    if not isinstance(col.type, TileType):
        return col
    return pa.chunked_array([pa.FixedShapeTensorArray.from_numpy_ndarray(c.to_numpy_ndarray())
                             for c in col.chunks], _tensor_type(col.type))


def _scattered(col: pa.ChunkedArray, destination: np.ndarray,
               windows: Windows | None) -> pa.Array:
    shape = col.type.shape if windows is None else (*col.type.shape[:-2], windows.size,
                                                      windows.size)
    out = np.empty((len(col), *shape), dtype=_value_type(col.type).to_pandas_dtype())
    start = 0
    for chunk in col.chunks:
        rows = destination[start : start + len(chunk)]
        if windows is None:
            out[rows] = chunk.to_numpy_ndarray()
        else:
            windows.scatter(chunk.to_numpy_ndarray(), out, rows, start)
        start += len(chunk)
    return pa.FixedShapeTensorArray.from_numpy_ndarray(out)


def tile_nbytes(schema: pa.Schema) -> int:
    """Decoded bytes per tile of ``schema``'s columns (strings counted at 16 bytes)."""
    return sum(_value_nbytes(field.type) for field in schema)


def _value_nbytes(t: pa.DataType) -> int:
    if isinstance(t, TileType):
        return t.storage_type.byte_width
    if isinstance(t, pa.FixedShapeTensorType):
        return math.prod(t.shape) * _value_nbytes(t.value_type)
    if isinstance(t, pa.FixedSizeListType):
        return t.list_size * _value_nbytes(t.value_type)
    try:
        return t.bit_width // 8 or 1
    except ValueError:  # variable-width (strings)
        return 16
