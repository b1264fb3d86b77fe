"""Tile format v2 (one raw fixed-size binary value per tile and array column) and v1 reading."""

import dataclasses
import json
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mpmae.data.format.manifest import DatasetError, read_manifest, write_manifest
from mpmae.data.format.publish import options_key
from mpmae.data.format.schema import array_column, tile_schema
from mpmae.data.format.shards import shard_name, write_shard
from mpmae.data.format.tile_array import TileType, column_ndarray, tile_array
from mpmae.data.inspect import summarize
from mpmae.data.sources.synth import synthesize
from mpmae.data.stream.row_group_source import RowGroupSource
from mpmae.data.stream.tile_dataset import TileDataset
from mpmae.data.verify import verify_dataset
from mpmae.modalities import MODALITIES
from mpmae.storage import resolve

README = Path(__file__).resolve().parents[2] / "README.md"
SYNTH = {"tiles": 96, "size": 16, "seed": 3, "downstream_tiles": 0, "tiles_per_shard": 32}


@pytest.fixture(scope="module")
def v2_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("v2") / "world"
    synthesize(str(root), **SYNTH, progress=lambda _: None)
    return root


def write_v1_copy(src: Path, dest: Path) -> None:
    """``src`` (format v2) rewritten as format v1, shards named as older mpmae named them."""
    m = read_manifest(resolve(src))
    schema = tile_schema(m.modalities, m.tile_size, with_label=bool(m.labels), version=1)
    key = options_key(m.provenance["options"], version=1)
    splits = {}
    for split, infos in m.splits.items():
        splits[split] = []
        for i, info in enumerate(infos):
            table = pq.read_table(src / info.path)
            columns = [array_column(column_ndarray(c), version=1)
                       if isinstance(c.type, TileType) else c for c in table.columns]
            splits[split].append(write_shard(resolve(dest), shard_name(split, i, key),
                                             pa.table(columns, schema=schema)))
    write_manifest(resolve(dest), dataclasses.replace(m, splits=splits, format_version=1))


def stored_tiles(ds: TileDataset, columns: list[str]) -> dict[str, np.ndarray]:
    """One epoch of the row-group source in stored order (no seed), read in this process."""
    schema = ds.manifest.schema()
    src = RowGroupSource(ds.root, ds.row_groups("train"),
                         pa.schema([schema.field(c) for c in columns]), seed=None,
                         tiles_per_block=32)
    blocks = [b for task in src.get_read_tasks(parallelism=src.num_tasks) for b in task()]
    for block in blocks:  # what Ray Data hands on as ndarrays, whatever the version
        assert all(isinstance(block.schema.field(c).type, pa.FixedShapeTensorType)
                   for c in columns if c != "tile_id")
    table = pa.concat_tables(blocks)
    return {c: np.asarray(table.column(c).to_pylist()) if c == "tile_id"
            else column_ndarray(table.column(c)) for c in columns}


def test_v2_stores_raw_bytes_with_shape_dtype_and_bands_in_field_metadata(v2_world):
    doc = json.loads((v2_world / "dataset.json").read_text())
    assert doc["format_version"] == 2
    path = v2_world / doc["splits"]["train"][0]["path"]
    schema = pq.read_schema(path)
    for name, mod in MODALITIES.items():
        if mod.kind.is_classification and not mod.kind.is_pixel:
            continue
        entry, field = doc["modalities"][name], schema.field(name)
        assert entry["storage"].startswith("fixed_size_binary")
        shape, dtype = json.loads(field.metadata[b"mpmae.shape"]), field.metadata[b"mpmae.dtype"]
        assert shape == entry["shape"] and np.dtype(dtype.decode()) == np.dtype(entry["dtype"])
        assert json.loads(field.metadata[b"mpmae.bands"]) == entry["bands"]
        width = int(np.prod(shape)) * np.dtype(mod.dtype).itemsize
        assert field.type.storage_type == pa.binary(width)
    meta = pq.ParquetFile(path).metadata.row_group(0)
    chunk = meta.column(schema.get_field_index("sentinel2"))
    assert chunk.compression in ("LZ4", "LZ4_RAW") and "RLE_DICTIONARY" not in chunk.encodings


def test_the_readme_lines_read_a_shard_with_pyarrow_and_numpy_alone(v2_world, tmp_path):
    block = README.read_text().split("<!-- plain-read -->", 1)[1]
    lines = re.search(r"```python\n(.*?)```", block, re.S).group(1)
    assert len(lines.strip().splitlines()) == 3
    shard = v2_world / read_manifest(resolve(v2_world)).shards("train")[1].path
    out = tmp_path / "s2.npy"
    script = (f"shard_path = {str(shard)!r}\n{lines}\nnp.save({str(out)!r}, s2)\n"
              "import sys; assert not [m for m in sys.modules if m.startswith('mpmae')]\n")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    expected = column_ndarray(pq.read_table(shard).column("sentinel2"))
    assert expected.shape == (32, 13, 16, 16) and np.array_equal(np.load(out), expected)


def test_a_tile_array_views_its_bytes_slices_included():
    values = np.arange(6 * 2 * 3, dtype=">u2").reshape(6, 2, 3)  # big-endian in, LE stored
    arr = tile_array(values)
    assert arr.type.dtype == "<u2" and arr.type.storage_type == pa.binary(12)
    assert np.array_equal(arr.to_numpy_ndarray(), values)
    part = arr.slice(2, 3)
    assert np.array_equal(part.to_numpy_ndarray(), values[2:5])
    assert np.shares_memory(part.to_numpy_ndarray(), arr.to_numpy_ndarray())
    assert np.array_equal(part.to_numpy(), values[2:5])
    assert part.to_numpy(writable=True).flags.writeable
    assert arr.slice(6).to_numpy_ndarray().shape == (0, 2, 3)
    again = pickle.loads(pickle.dumps(pa.table({"x": arr})))
    assert again.schema.field("x").type == arr.type
    assert np.array_equal(column_ndarray(again.column("x")), values)
    assert TileType((2, 3), "<u2") != TileType((3, 2), "<u2")  # same width, other tiles
    assert not TileType((2, 3), "<u2").equals(TileType((2, 3), "<i2"))
    assert TileType((2, 3), "<u2") == TileType([2, 3], np.dtype(">u2").str)


def test_a_v1_dataset_opens_verifies_and_streams_the_same_tiles(v2_world, tmp_path):
    v1 = tmp_path / "v1"
    write_v1_copy(v2_world, v1)
    assert json.loads((v1 / "dataset.json").read_text())["format_version"] == 1
    old, new = TileDataset.open(str(v1)), TileDataset.open(str(v2_world))
    assert isinstance(old.manifest.schema().field("sentinel2").type, pa.FixedShapeTensorType)
    assert "format v1" in summarize(old)
    assert "page checksums and schema ok" in verify_dataset(str(v1), progress=lambda _: None)
    columns = ["tile_id", "sentinel2", "sentinel1", "era5", "bands_present"]
    a, b = stored_tiles(old, columns), stored_tiles(new, columns)
    for c in columns:
        assert np.array_equal(a[c], b[c], equal_nan=a[c].dtype.kind == "f"), c


def test_a_rerun_over_a_v1_dataset_writes_v2_shards_beside_it_then_removes_them(v2_world,
                                                                                 tmp_path):
    v1 = tmp_path / "v1"
    write_v1_copy(v2_world, v1)
    old = {s.path for shards in read_manifest(resolve(v1)).splits.values() for s in shards}
    synthesize(str(v1), **SYNTH, progress=lambda _: None)
    m = read_manifest(resolve(v1))
    new = {s.path for shards in m.splits.values() for s in shards}
    assert m.format_version == 2 and not old & new
    assert {str(p.relative_to(v1)) for p in v1.rglob("*.parquet")} == new
    TileDataset.open(str(v1))


def test_a_newer_format_version_is_refused_naming_what_this_mpmae_reads(v2_world, tmp_path):
    shutil.copytree(v2_world, tmp_path / "w")
    doc = json.loads((tmp_path / "w" / "dataset.json").read_text())
    doc["format_version"] = 3
    (tmp_path / "w" / "dataset.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=r"format version 3; this mpmae reads versions 1, 2: "
                                           r"upgrade mpmae"):
        TileDataset.open(str(tmp_path / "w"))


def test_footers_of_one_type_share_one_deserialized_type():
    # Start-up reads thousands of footers: their tile types are rebuilt once, not each time.
    a, b = TileType((2, 4, 4), "<u2"), TileType((4, 2, 4), "<u2")
    first = TileType.__arrow_ext_deserialize__(a.storage_type, a.__arrow_ext_serialize__())
    again = TileType.__arrow_ext_deserialize__(a.storage_type, a.__arrow_ext_serialize__())
    other = TileType.__arrow_ext_deserialize__(b.storage_type, b.__arrow_ext_serialize__())
    assert first is again and first == a
    assert other == b and other != first
