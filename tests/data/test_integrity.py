"""Damaged shards are caught, not trained on: page checksums, sizes and hashes."""

import hashlib
import json
import re
import shutil

import pyarrow.parquet as pq
import pytest

from mpmae.cli import main
from mpmae.data.format.manifest import DatasetError, read_manifest
from mpmae.data.format.schema import PRESENCE_COLUMN
from mpmae.data.inspect import inspect_dataset
from mpmae.data.sources.synth import synthesize
from mpmae.data.stream.row_group_source import Expected, RowGroup, read_row_groups
from mpmae.data.stream.tile_dataset import TileDataset
from mpmae.data.verify import NO_HASHES, verify_dataset
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


def _pages(shard, column):
    """(first byte of ``column``'s pages in row group 0, its first data page, the end)."""
    meta = pq.ParquetFile(shard).metadata.row_group(0)
    chunk = next(meta.column(i) for i in range(meta.num_columns)
                 if meta.column(i).path_in_schema.startswith(column))
    first = min(o for o in (chunk.dictionary_page_offset, chunk.data_page_offset) if o)
    return first, chunk.data_page_offset, first + chunk.total_compressed_size


def _page_positions(shard, column="sentinel2", count=12):
    """Byte offsets spread over ``column``'s data pages, away from the page headers."""
    _, data_page, end = _pages(shard, column)
    start, stop = data_page + 64, end - 64
    return list(range(start, stop, (stop - start) // count))[:count]


def test_the_manifest_records_each_shards_size_and_sha256(one_shard):
    for shards in read_manifest(resolve(one_shard)).splits.values():
        for info in shards:
            data = (one_shard / info.path).read_bytes()
            assert (info.bytes, info.sha256) == (len(data), hashlib.sha256(data).hexdigest())


def test_a_flipped_byte_in_a_page_fails_the_read_naming_the_shard(one_shard):
    shard = _train_shard(one_shard)
    ds = TileDataset.open(str(one_shard))
    name = shard.relative_to(one_shard).as_posix()
    layout = {name: tuple(ds.row_groups("train")[name])}
    group = [RowGroup(name, 0, layout[name][0])]
    good = shard.read_bytes()
    for position in _page_positions(shard):
        damaged = bytearray(good)
        damaged[position] ^= 0x10
        shard.write_bytes(bytes(damaged))
        with pytest.raises(DatasetError, match=rf"{shard.name} has corrupt data in row group 0"):
            read_row_groups(ds.root, Expected(layout, ds.manifest.schema()), group,
                            ["sentinel2"])


@pytest.fixture
def world(small_world, tmp_path):
    shutil.copytree(small_world, tmp_path / "w")
    return tmp_path / "w"


def _flip(shard, column="sentinel2"):
    """Flip one bit in the last sixth of ``column``'s pages (past any page header)."""
    first, _, end = _pages(shard, column)
    data = bytearray(shard.read_bytes())
    data[end - (end - first) // 6] ^= 0x01
    shard.write_bytes(bytes(data))


def _shards(root, split="train"):
    doc = json.loads((root / "dataset.json").read_text())
    return [root / s["path"] for s in doc["splits"][split]]


def test_verify_passes_a_good_dataset(world, capsys):
    assert main(["data", "verify", str(world)]) == 0
    out = capsys.readouterr().out
    assert f"verified {world}: " in out and "SHA-256, page checksums and schema ok" in out


def test_verify_names_every_damaged_shard(world, capsys):
    flipped, rewritten, gone = _shards(world)[:3]
    _flip(flipped)
    pq.write_table(pq.read_table(rewritten), rewritten)  # valid Parquet, other bytes
    gone.unlink()
    assert main(["data", "verify", str(world)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "3 of " in err
    assert re.search(rf"{flipped.name} \(SHA-256 differs .*; does not decode \(.*CRC", err)
    assert re.search(rf"{rewritten.name} \(\d+ bytes, dataset\.json says \d+; SHA-256", err)
    assert f"{gone.name} (missing)" in err


def test_verify_of_a_manifest_without_hashes_says_what_it_can_check(world):
    doc = json.loads((world / "dataset.json").read_text())
    for shards in doc["splits"].values():
        for shard in shards:
            del shard["sha256"]
    (world / "dataset.json").write_text(json.dumps(doc))
    lines: list[str] = []
    assert "page checksums and schema ok" in verify_dataset(str(world), progress=lines.append)
    assert lines[0] == NO_HASHES
    _flip(_shards(world)[0])
    with pytest.raises(DatasetError, match=r"1 of \d+ shards .* damaged: .*does not decode"):
        verify_dataset(str(world), progress=lines.append)


def test_verify_names_missing_statistics(world):
    doc = json.loads((world / "dataset.json").read_text())
    del doc["stats"]["sentinel2_l1c"]
    (world / "dataset.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=r"stats: no statistics for \['sentinel2_l1c'\]"):
        verify_dataset(str(world), progress=lambda _: None)


def test_inspect_names_a_damaged_or_replaced_shard(small_world, world):
    first, second = _shards(world)[:2]
    pq.write_table(pq.read_table(second), second)
    with pytest.raises(DatasetError, match=rf"{second.name} does not match dataset\.json: \d+ "
                       r"bytes, dataset\.json says"):
        inspect_dataset(str(world))
    # a manifest of older mpmae (no row groups): its footers are read on opening, and a
    # local file is read at its real size; inspect compares the sizes itself
    doc = json.loads((world / "dataset.json").read_text())
    for shards in doc["splits"].values():
        for shard in shards:
            del shard["row_groups"]
    (world / "dataset.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=rf"{second.name} is \d+ bytes, dataset\.json says"):
        inspect_dataset(str(world))
    shutil.copy(_shards(small_world)[1], second)
    _flip(first, PRESENCE_COLUMN)
    with pytest.raises(DatasetError, match=rf"{first.name} has corrupt data .*CRC"):
        inspect_dataset(str(world))
