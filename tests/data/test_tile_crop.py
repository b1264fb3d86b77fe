"""The training crop cut in the read tasks: one window per tile shared by every pixel
modality, seeded by epoch and task, centred without a seed."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from mpmae.data.format.manifest import DatasetError
from mpmae.data.sources.synth import synthesize
from mpmae.data.stream.normalise import S2_LEVEL_COLUMN, Normaliser
from mpmae.data.stream.row_group_source import RowGroupSource
from mpmae.data.stream.tile_dataset import TileDataset
from mpmae.modalities import resolve_pretext

SIZE, CROP = 8, 5
PIXEL = ("sentinel2", "sentinel1", "aster", "dynamic_world")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("crop") / "world"
    synthesize(str(root), tiles=150, size=SIZE, seed=5, downstream_tiles=0, tiles_per_shard=64,
               progress=lambda _: None)
    return TileDataset.open(str(root))


def source(ds: TileDataset, seed, crop=CROP) -> RowGroupSource:
    schema = ds.manifest.schema()
    fields = [schema.field(c) for c in ("tile_id", *PIXEL, "era5")]
    return RowGroupSource(ds.root, ds.row_groups("train"), pa.schema(fields), seed=seed,
                          tiles_per_block=64, blocks_per_task=1, crop=crop)


def blocks(src: RowGroupSource) -> list[pa.Table]:
    return [b for task in src.get_read_tasks(parallelism=src.num_tasks) for b in task()]


def stored(ds: TileDataset) -> dict[str, dict[str, np.ndarray]]:
    table = pq.read_table(ds.shard_paths("train"), filesystem=ds.root.fs)
    ids = table.column("tile_id").to_pylist()
    return {name: dict(zip(ids, table.column(name).combine_chunks().to_numpy_ndarray(),
                           strict=True)) for name in (*PIXEL, "era5")}


def corner(window: np.ndarray, tile: np.ndarray) -> tuple[int, int]:
    """Where ``window`` sits in ``tile`` (the first match)."""
    for top in range(SIZE - CROP + 1):
        for left in range(SIZE - CROP + 1):
            if np.array_equal(tile[:, top : top + CROP, left : left + CROP], window):
                return top, left
    raise AssertionError("the window is nowhere in its tile")


def windows(ds: TileDataset, seed) -> dict[str, tuple[int, int]]:
    """tile id → the corner of its window, checked to be the same for every modality."""
    tiles, out = stored(ds), {}
    for block in blocks(source(ds, seed)):
        ids = block.column("tile_id").to_pylist()
        s2 = block.column("sentinel2").combine_chunks().to_numpy_ndarray()
        assert s2.shape[1:] == (13, CROP, CROP)
        for i, tile_id in enumerate(ids):
            top, left = out[tile_id] = corner(s2[i], tiles["sentinel2"][tile_id])
            for name in PIXEL[1:]:
                got = block.column(name).combine_chunks().to_numpy_ndarray()[i]
                want = tiles[name][tile_id][:, top : top + CROP, left : left + CROP]
                np.testing.assert_array_equal(got, want)  # the same window (NaN == NaN)
            era5 = block.column("era5").combine_chunks().to_numpy_ndarray()[i]
            np.testing.assert_array_equal(era5, tiles["era5"][tile_id])  # not a pixel column
    return out


def test_each_tile_gets_one_random_window_for_all_its_pixel_modalities(world):
    corners = windows(world, seed=0)
    assert len(corners) == world.manifest.split_tiles("train")
    assert len(set(corners.values())) > 5  # windows differ between tiles
    assert windows(world, seed=0) == corners  # seeded: a re-run crops the same
    assert windows(world, seed=1) != corners


def test_without_a_seed_every_tile_gets_the_centre_window(world):
    centre = (SIZE - CROP) // 2
    assert set(windows(world, seed=None).values()) == {(centre, centre)}


def test_the_blocks_announce_the_cropped_shape_and_size(world):
    src, whole = source(world, seed=0), source(world, seed=0, crop=None)
    assert list(src.block_schema.field("sentinel2").type.shape) == [13, CROP, CROP]
    assert src.estimate_inmemory_data_size() < whole.estimate_inmemory_data_size()
    assert blocks(src)[0].schema == src.block_schema


def test_a_crop_larger_than_the_tiles_is_refused(world):
    with pytest.raises(DatasetError, match=f"{SIZE + 8}px crop does not fit .* {SIZE}px"):
        source(world, seed=0, crop=SIZE + 8)


def test_the_normaliser_leaves_tiles_cut_to_its_crop_alone():
    stats = {k: {"mean": [0.0] * 13, "std": [1.0] * 13}
             for k in ("sentinel2_l1c", "sentinel2_l2a")}
    raw = {"sentinel2": (torch.arange(2 * 13 * CROP * CROP) + 1).to(torch.uint16)
           .view(2, 13, CROP, CROP),
           S2_LEVEL_COLUMN: torch.zeros(2, dtype=torch.bool)}
    norm = Normaliser(stats, resolve_pretext("S2"), crop=CROP).train()
    out = norm(raw)
    assert torch.equal(out["sentinel2"], raw["sentinel2"][:, norm.input_index].float())
