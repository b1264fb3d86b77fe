"""Damaged shards are caught, not trained on: page checksums, sizes and hashes."""

import hashlib
import json

import pyarrow.parquet as pq
import pytest

from mpmae.data.format.manifest import DatasetError, read_manifest
from mpmae.data.sources.synth import synthesize
from mpmae.data.stream.row_group_source import RowGroup, read_row_groups
from mpmae.data.stream.tile_dataset import TileDataset
from mpmae.storage import resolve


@pytest.fixture
def one_shard(tmp_path):
    """A 16-tile world whose train split is one shard of one row group."""
    root = tmp_path / "w"
    synthesize(str(root), tiles=16, size=16, seed=0, downstream_tiles=0, tiles_per_shard=64,
               progress=lambda _: None)
    return root


def _train_shard(root):
    return root / json.loads((root / "dataset.json").read_text())["splits"]["train"][0]["path"]


def _page_positions(shard, column="sentinel2", count=12):
    """Byte offsets spread over ``column``'s pages in the first row group (its dictionary
    page, if any, comes first), away from the page headers."""
    meta = pq.ParquetFile(shard).metadata.row_group(0)
    chunk = next(meta.column(i) for i in range(meta.num_columns)
                 if meta.column(i).path_in_schema.startswith(column))
    first = min(o for o in (chunk.dictionary_page_offset, chunk.data_page_offset) if o)
    start, stop = chunk.data_page_offset + 64, first + chunk.total_compressed_size - 64
    return list(range(start, stop, (stop - start) // count))[:count]


def test_the_manifest_records_each_shards_size_and_sha256(one_shard):
    for shards in read_manifest(resolve(one_shard)).splits.values():
        for info in shards:
            data = (one_shard / info.path).read_bytes()
            assert (info.bytes, info.sha256) == (len(data), hashlib.sha256(data).hexdigest())


def test_a_flipped_byte_in_a_page_fails_the_read_naming_the_shard(one_shard):
    shard = _train_shard(one_shard)
    ds = TileDataset.open(str(one_shard))
    footers = ds.footers("train")
    name = shard.relative_to(one_shard).as_posix()
    group = [RowGroup(name, 0, footers[name].row_group(0).num_rows)]
    good = shard.read_bytes()
    for position in _page_positions(shard):
        damaged = bytearray(good)
        damaged[position] ^= 0x10
        shard.write_bytes(bytes(damaged))
        with pytest.raises(DatasetError, match=rf"{shard.name} has corrupt data in row group 0"):
            read_row_groups(ds.root, footers, group, ["sentinel2"])
