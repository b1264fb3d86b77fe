import os
import sys
import uuid

import psutil
import pytest
import torch

from mpmae.data.format.manifest import read_manifest
from mpmae.data.sources.synth import synthesize
from mpmae.data.stream.normalise import S2_LEVEL_COLUMN, Normaliser
from mpmae.data.stream.tile_dataset import TileDataset, torch_batches
from mpmae.modalities import resolve_pretext
from mpmae.storage import resolve

pytestmark = pytest.mark.ray


def test_one_epoch_delivers_every_train_tile_with_only_the_needed_columns(ray_local, small_world):
    ds = TileDataset.open(str(small_world))
    pretext = resolve_pretext("S2")
    batches = list(torch_batches(ds.read("train", pretext), batch_size=16, drop_last=False))
    assert sum(len(b["sentinel2"]) for b in batches) == ds.manifest.split_tiles("train")
    assert set(batches[0]) == {"sentinel2", S2_LEVEL_COLUMN}
    assert batches[0]["sentinel2"].dtype == torch.uint16  # raw until the device


def test_file_order_is_reshuffled_every_epoch(ray_local, small_world):
    ds = TileDataset.open(str(small_world))
    assert len(ds.manifest.shards("train")) >= 3
    data = ds.read("train", resolve_pretext("S2"), seed=7, extra_columns=("tile_id",))
    orders = {tuple(b["tile_id"][0] for b in data.iter_batches(batch_size=8))
              for _ in range(4)}
    assert len(orders) > 1


def test_the_read_tasks_layout_reaches_the_blocks(ray_local, small_world):
    """``tiles_per_block`` below a row group: every block is one whole row group."""
    ds = TileDataset.open(str(small_world))
    data = ds.read("train", resolve_pretext("S2"), tiles_per_block=1, blocks_per_task=2)
    blocks = [len(b["sentinel2"]) for b in data.iter_batches(batch_size=None)]
    groups = [t for tiles in ds.row_groups("train").values() for t in tiles]
    assert sorted(blocks) == sorted(groups)


def test_the_read_tasks_run_in_workers_with_the_environment_asked_for(ray_local, small_world):
    marker = f"mpmae-test-{uuid.uuid4().hex}"
    ds = TileDataset.open(str(small_world))
    data = ds.read("train", resolve_pretext("S2"), worker_env={"MPMAE_TEST_MARKER": marker},
                   tiles_per_block=1, blocks_per_task=1)
    tiles, marked = 0, set()
    for batch in data.iter_batches(batch_size=None):
        tiles += len(batch["sentinel2"])
        marked |= {p.pid for p in psutil.process_iter()
                   if _environ(p).get("MPMAE_TEST_MARKER") == marker}
    assert tiles == ds.manifest.split_tiles("train")
    assert marked and os.getpid() not in marked  # Ray's workers of their own, not this one


def _environ(process: psutil.Process) -> dict:
    try:
        return process.environ()
    except (psutil.Error, OSError):  # gone, or not ours
        return {}


def test_a_resumed_stream_reads_only_the_rest_of_its_epoch_then_whole_epochs(ray_local,
                                                                           small_world):
    # Ray Data calls the datasource three times to plan a dataset before it runs it: the
    # resume must hold for the execution, not for the first of those calls.
    ds = TileDataset.open(str(small_world))
    epoch, skip = ds.manifest.split_tiles("train"), ds.manifest.split_tiles("train") // 2
    largest_group = max(s.tiles for s in ds.manifest.shards("train"))  # one row group each
    data = ds.read("train", resolve_pretext("S2"), seed=5, extra_columns=("tile_id",),
                   first_epoch=1, skip_tiles=skip)

    def ids() -> list[str]:
        return [i for b in data.iter_batches(batch_size=8) for i in b["tile_id"]]

    rest, after = ids(), ids()
    assert epoch - skip <= len(rest) < epoch - skip + largest_group
    assert len(after) == len(set(after)) == epoch


def test_normalised_batches_for_the_all_set_with_a_shuffle_buffer(ray_local, small_world):
    ds = TileDataset.open(str(small_world))
    pretext = resolve_pretext("all")
    norm = Normaliser(ds.manifest.stats, pretext, crop=8)
    raw = next(iter(torch_batches(ds.read("train", pretext), batch_size=8, shuffle_buffer=32,
                                  seed=0)))
    out = norm(raw)
    assert out["image"].shape == (8, 12, 8, 8) and torch.isfinite(out["image"]).all()
    assert out["dynamic_world"].shape == (8, 8, 8) and out["eco_region"].shape == (8,)


def test_stream_from_a_real_s3_endpoint(ray_local, s3_endpoint, s3_bucket):
    uri = f"{s3_bucket}/world"
    synthesize(uri, tiles=24, size=8, seed=1, downstream_tiles=0, tiles_per_shard=8,
               storage=s3_endpoint, progress=lambda _: None)
    where = resolve(uri, s3_endpoint)  # as a run's driver resolves it, once
    ds = TileDataset.open(where)
    assert ds.root is where and read_manifest(where).num_tiles == 24
    batches = list(torch_batches(ds.read("train", resolve_pretext("pix")), batch_size=4,
                                 drop_last=False))
    assert sum(len(b["sentinel2"]) for b in batches) == ds.manifest.split_tiles("train")


def _count_tiles(config):
    import torch.distributed as dist
    from ray import train

    shard = train.get_dataset_shard("train")
    seen = sum(len(b["sentinel2"]) for b in torch_batches(shard, batch_size=4, drop_last=False))
    total = torch.tensor([seen])
    dist.all_reduce(total)
    # Train V2 keeps metrics only with checkpoints: hand the counts back through a file.
    with open(f"{config['out']}.{train.get_context().get_world_rank()}", "w") as f:
        f.write(f"{seen} {int(total)}")


def test_stream_inside_ray_train_workers_splits_the_tiles(ray_local, small_world):
    from ray import cloudpickle
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers can't import tests
    ds = TileDataset.open(str(small_world))
    trainer = TorchTrainer(
        _count_tiles,
        train_loop_config={"out": str(small_world.parent / "counts")},
        datasets={"train": ds.read("train", resolve_pretext("S2"))},
        scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
        run_config=RunConfig(storage_path=str(small_world.parent / "ray_results")),
    )
    trainer.fit()
    counts = [(small_world.parent / f"counts.{rank}").read_text().split() for rank in (0, 1)]
    seen, totals = [int(c[0]) for c in counts], {int(c[1]) for c in counts}
    assert totals == {ds.manifest.split_tiles("train")} and sum(seen) == totals.pop()
    assert all(n > 0 for n in seen)
