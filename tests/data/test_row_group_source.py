"""The row-group datasource, driven directly: its read tasks run in this process."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray.data

from mpmae.data.sources.synth import synthesize
from mpmae.data.stream.row_group_source import LEADING_TASKS, RowGroupSource, tile_nbytes
from mpmae.data.stream.stage_clock import StageClock
from mpmae.data.stream.tile_dataset import TileDataset
from mpmae.modalities import resolve_pretext


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("rg") / "world"
    # 96-tile shards hold two row groups each (64 + 32 tiles).
    synthesize(str(root), tiles=200, size=8, seed=3, downstream_tiles=0, tiles_per_shard=96,
               progress=lambda _: None)
    return TileDataset.open(str(root))


def source(ds: TileDataset, seed, tiles_per_block=64, blocks_per_task=1,
           **options) -> RowGroupSource:
    schema = ds.manifest.schema()
    return RowGroupSource(ds.root, ds.row_groups("train"),
                          pa.schema([schema.field("tile_id"), schema.field("sentinel2")]),
                          seed=seed, tiles_per_block=tiles_per_block,
                          blocks_per_task=blocks_per_task, **options)


def epoch(src: RowGroupSource) -> list[str]:
    """One execution's tiles, planned as Ray Data's executor does: with a data context."""
    ids = []
    tasks = src.get_read_tasks(parallelism=src.num_tasks,
                               data_context=ray.data.DataContext.get_current())
    for task in tasks:
        for block in task():
            ids += block.column("tile_id").to_pylist()
    return ids


def test_every_epoch_reads_each_tile_once_in_a_new_order(world):
    src = source(world, seed=0)
    epochs = [epoch(src) for _ in range(3)]
    expected = sorted(pq.read_table(world.shard_paths("train"), columns=["tile_id"])
                      .column("tile_id").to_pylist())
    for ids in epochs:
        assert sorted(ids) == expected
    assert len({tuple(ids) for ids in epochs}) == 3


def test_the_same_seed_gives_the_same_epochs(world):
    a, b = source(world, seed=5), source(world, seed=5)
    assert [epoch(a) for _ in range(2)] == [epoch(b) for _ in range(2)]
    assert epoch(source(world, seed=6)) != epoch(source(world, seed=5))


def test_without_a_seed_tiles_come_in_stored_order(world):
    src = source(world, seed=None)
    assert epoch(src) == epoch(src)


def test_tasks_group_row_groups_and_report_their_rows(world):
    src = source(world, seed=0, tiles_per_block=128)
    groups = src.row_groups
    assert len(groups) > 2
    tasks = src.get_read_tasks(parallelism=1)
    assert len(tasks) == src.num_tasks < len(groups)
    assert sum(t.metadata.num_rows for t in tasks) == sum(g.tiles for g in groups)


def test_a_task_yields_its_tiles_block_by_block(world):
    src = source(world, seed=0, tiles_per_block=64, blocks_per_task=2)
    task = src.get_read_tasks(parallelism=1)[LEADING_TASKS]  # the first after them
    blocks = list(task())
    assert len(blocks) == 2  # a row group per block: each of the task's two groups
    assert sum(len(b) for b in blocks) == task.metadata.num_rows


def test_each_epoch_starts_with_one_row_group_tasks(world):
    src = source(world, seed=0, tiles_per_block=128)
    sizes = {g.tiles for g in src.row_groups}
    for _ in range(2):
        tasks = src.get_read_tasks(parallelism=1)
        assert len(tasks) == src.num_tasks
        leading, rest = tasks[:LEADING_TASKS], tasks[LEADING_TASKS:]
        assert all(t.metadata.num_rows in sizes for t in leading)  # one group each
        assert 0 < len(rest) < len(src.row_groups) - LEADING_TASKS  # the rest are grouped


def test_tile_nbytes_estimates_the_decoded_arrow_size(world):
    pretext = resolve_pretext("all")
    schema = world.manifest.schema()
    cols = pa.schema([schema.field(c) for c in pretext.columns if c != "s2_type"])
    table = pq.read_table(world.shard_paths("train")[0], columns=cols.names)
    # Arrow adds validity bitmaps and offsets; the estimate counts the values
    assert tile_nbytes(cols) * table.num_rows == pytest.approx(table.nbytes, rel=0.03)


def test_shuffling_keeps_each_tiles_columns_together(world):
    stored = pq.read_table(world.shard_paths("train"), columns=["tile_id", "sentinel2"])
    by_id = dict(zip(stored.column("tile_id").to_pylist(),
                     stored.column("sentinel2").combine_chunks().to_numpy_ndarray(), strict=True))
    for task in source(world, seed=1).get_read_tasks(parallelism=1):
        for block in task():
            pixels = block.column("sentinel2").combine_chunks().to_numpy_ndarray()
            for tile_id, tile in zip(block.column("tile_id").to_pylist(), pixels, strict=True):
                assert (tile == by_id[tile_id]).all()


@pytest.mark.ray
@pytest.mark.parametrize("as_yielded", [True, False])
def test_ray_data_passes_the_blocks_on_as_they_are_yielded(ray_local, tmp_path, as_yielded):
    import ray.data

    synthesize(str(tmp_path), tiles=300, size=8, seed=4, downstream_tiles=0,
               tiles_per_shard=64, progress=lambda _: None)  # row groups of 64 tiles
    ds = TileDataset.open(str(tmp_path))
    src = source(ds, seed=0, tiles_per_block=64, blocks_per_task=2)
    data = ray.data.read_datasource(src, override_num_blocks=src.num_tasks)
    if as_yielded:
        data.context.target_max_block_size = src.target_max_block_size
    sizes = sorted(len(b["tile_id"]) for b in data.iter_batches(batch_size=None))
    groups = sorted(g.tiles for g in src.row_groups)
    # Ray Data's default merges a task's two blocks into one
    assert (sizes == groups) is as_yielded


def test_a_resumed_stream_continues_its_epoch_then_goes_on_in_order(world):
    fresh = source(world, seed=4)
    epochs = [epoch(fresh) for _ in range(4)]
    # Epoch 2 was interrupted after 70 tiles: its first row group (64 tiles) is left out,
    # the second (which held the other 6) is read again; then epoch 3 as a fresh run has it.
    resumed = source(world, seed=4, first_epoch=2, skip_tiles=70)
    rest, after = epoch(resumed), epoch(resumed)
    first_group = resumed.order(2)[0].tiles
    assert [g.tiles for g in resumed.order(3)] == [g.tiles for g in fresh.order(3)]
    assert first_group == 64
    # the first task reads the first row group alone; blocks are shuffled per task
    assert sorted(rest) == sorted(epochs[2][first_group:])
    assert after == epochs[3]


def test_a_resume_at_the_end_of_an_epoch_reads_nothing_more_of_it(world):
    resumed = source(world, seed=4, first_epoch=1, skip_tiles=10_000)
    assert epoch(resumed) == []
    assert sorted(epoch(resumed)) == sorted(epoch(source(world, seed=4)))


def test_a_stage_clock_records_each_blocks_decode_and_shuffle(world, tmp_path):
    clock = StageClock(str(tmp_path))
    src = source(world, seed=0, stage_clock=clock)
    tiles = len(epoch(src))
    taken = clock.take()
    assert taken["tiles"] == tiles > 0
    assert taken["decode"] > 0 and taken["shuffle_copy"] > 0
    assert clock.take()["tiles"] == 0  # taken once
    epoch(source(world, seed=0))  # no clock: nothing recorded
    assert list(tmp_path.iterdir()) == []


def test_a_read_task_outliving_its_benchmark_records_nothing(world, tmp_path):
    # a stream stopped at a cap: its folder removed while read tasks still run
    clock = StageClock(str(tmp_path / "gone"))
    assert len(epoch(source(world, seed=0, stage_clock=clock))) > 0
    assert not (tmp_path / "gone").exists()
