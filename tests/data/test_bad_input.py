"""Every bad input gets an error that names the file or field and says what to do."""

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mpmae.data.format.manifest import DatasetError
from mpmae.data.sources.synth import synthesize
from mpmae.data.stream.tile_dataset import TileDataset, guarded, torch_batches
from mpmae.modalities import resolve_pretext
from mpmae.storage import StorageError, StorageOptions


@pytest.fixture
def world(small_world, tmp_path):
    shutil.copytree(small_world, tmp_path / "w")
    return tmp_path / "w"


def _first_shard(world):
    return world / json.loads((world / "dataset.json").read_text())["splits"]["train"][0]["path"]


def test_truncated_shard_is_named(world):
    shard = _first_shard(world)
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with pytest.raises(DatasetError, match=rf"{shard.name}.*corrupt or truncated.*re-run"):
        TileDataset.open(str(world))


def test_missing_column_is_named(world):
    shard = _first_shard(world)
    pq.write_table(pq.read_table(shard).drop_columns(["sentinel1"]), shard)
    with pytest.raises(DatasetError, match=rf"{shard.name}.*missing column 'sentinel1'"):
        TileDataset.open(str(world))


def test_wrong_dtype_or_shape_is_named(world):
    shard = _first_shard(world)
    table = pq.read_table(shard)
    s2 = table.column("sentinel2").combine_chunks().to_numpy_ndarray().astype(np.float32)
    i = table.schema.get_field_index("sentinel2")
    table = table.set_column(i, "sentinel2", pa.FixedShapeTensorArray.from_numpy_ndarray(s2))
    pq.write_table(table, shard)
    with pytest.raises(DatasetError, match=r"column 'sentinel2' is .*float.*expected .*uint16"):
        TileDataset.open(str(world))


def test_manifest_that_does_not_match_the_shards(world):
    doc = json.loads((world / "dataset.json").read_text())
    doc["splits"]["train"][0]["tiles"] += 5
    (world / "dataset.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=r"dataset\.json says"):
        TileDataset.open(str(world))


def test_missing_and_malformed_manifest(world, tmp_path):
    with pytest.raises(DatasetError, match=r"no dataset\.json.*mpmae data synth"):
        TileDataset.open(str(tmp_path / "nothing-here"))
    (world / "dataset.json").write_text("{not json")
    with pytest.raises(DatasetError, match="malformed"):
        TileDataset.open(str(world))


def test_listed_shard_that_is_gone(world):
    shard = _first_shard(world)
    shard.unlink()
    with pytest.raises(DatasetError, match=rf"{shard.name}.*missing"):
        TileDataset.open(str(world))


def test_unreachable_store():
    opts = StorageOptions(endpoint_url="http://127.0.0.1:9", region="us-east-1",
                          access_key_id="k", secret_access_key="s3cr3t")
    with pytest.raises(StorageError, match=r"s3://data/world.*127\.0\.0\.1:9") as info:
        TileDataset.open("s3://data/world", opts)
    assert "s3cr3t" not in str(info.value)


def test_pretext_set_needing_absent_modalities(small_world):
    ds = TileDataset.open(str(small_world / "downstream"))
    with pytest.raises(DatasetError, match=r"needs \['sentinel1'.*choose a smaller"):
        ds.read("train", resolve_pretext("pix"))


@pytest.mark.ray
def test_shard_corrupt_inside_is_named_when_streaming_fails(ray_local, tmp_path):
    root = tmp_path / "c"
    synthesize(str(root), tiles=16, size=16, seed=0, downstream_tiles=0, tiles_per_shard=64,
               progress=lambda _: None)
    shard = _first_shard(root)
    data = bytearray(shard.read_bytes())
    middle = len(data) // 3
    data[middle : middle + 4000] = bytes(4000)  # the footer stays intact
    shard.write_bytes(bytes(data))
    ds = TileDataset.open(str(root))  # the footer check cannot see it
    with pytest.raises(DatasetError, match=rf"{shard.name} has corrupt data"):
        for _ in guarded(torch_batches(ds.read("train", resolve_pretext("all")), 4), ds, "train"):
            pass
