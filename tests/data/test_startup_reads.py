"""Start-up at many shards: no shard footer read (dataset.json records each shard's row
groups and size; one listing of each split's folder finds the shards), and every shard
that is missing or of another size named before any read starts; a manifest of older
mpmae (no row groups) reads one footer per shard, keeping only its row groups' tiles."""

import json
import re
import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mpmae.data.format.manifest import DatasetError, write_manifest
from mpmae.data.sources.synth import synthesize
from mpmae.data.stream.row_group_source import RowGroupSource
from mpmae.data.stream.tile_dataset import TileDataset, in_parallel
from mpmae.data.verify import verify_dataset
from mpmae.storage import StorageOptions

# The proxy is a script under infra/ (not a package), loaded by path as tests/infra does.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "infra"))
from infra_modules import load

s3_proxy = load("infra/local/s3_proxy.py")


@pytest.fixture
def world(small_world, tmp_path):
    shutil.copytree(small_world, tmp_path / "w")
    return tmp_path / "w"


def _edit_manifest(world: Path, edit) -> dict:
    doc = json.loads((world / "dataset.json").read_text())
    edit(doc)
    (world / "dataset.json").write_text(json.dumps(doc))
    return doc


def _count_shards(ds: TileDataset) -> int:
    return sum(len(shards) for shards in ds.manifest.splits.values())


def _open_counting(uri: str, s3_endpoint) -> tuple[TileDataset, dict, int]:
    """(the dataset opened through a counting proxy, every split's row groups, the
    requests that cost)."""
    proxy = s3_proxy.S3Proxy(s3_endpoint.endpoint_url, s3_proxy.Weather(latency_s=0.0))
    opts = StorageOptions(proxy.start(), s3_endpoint.region, s3_endpoint.access_key_id,
                          s3_endpoint.secret_access_key)
    try:
        ds = TileDataset.open(uri, opts)
        groups = {split: ds.row_groups(split) for split in ds.manifest.splits}
    finally:
        proxy.stop()
    return ds, groups, proxy.counts.requests


@pytest.mark.s3
def test_opening_reads_no_shard_on_s3(s3_endpoint, s3_bucket):
    uri = f"{s3_bucket}/w"
    synthesize(uri, tiles=120, size=16, seed=0, downstream_tiles=0, tiles_per_shard=2,
               storage=s3_endpoint, progress=lambda _: None)
    ds, groups, requests = _open_counting(uri, s3_endpoint)
    assert _count_shards(ds) >= 60
    # The manifest (a HEAD and a GET), then one LIST per split folder; row_groups() reads
    # nothing again.
    assert requests == 2 + len(ds.manifest.splits)
    for split, by_shard in groups.items():
        for info in ds.manifest.shards(split):
            assert by_shard[info.path] == info.row_groups == [info.tiles]  # one row group


@pytest.mark.s3
def test_an_older_manifest_reads_one_footer_per_shard_keeping_only_its_row_groups(
        s3_endpoint, s3_bucket):
    uri = f"{s3_bucket}/w"
    manifest = synthesize(uri, tiles=120, size=16, seed=0, downstream_tiles=0,
                          tiles_per_shard=2, storage=s3_endpoint, progress=lambda _: None)
    recorded = {s.path: s.row_groups for shards in manifest.splits.values() for s in shards}
    for shards in manifest.splits.values():
        for shard in shards:
            shard.row_groups = []
    write_manifest(TileDataset.open(uri, s3_endpoint, check=False).root, manifest)
    ds, groups, requests = _open_counting(uri, s3_endpoint)
    shards = _count_shards(ds)
    assert shards >= 60 and requests <= shards + 2  # the manifest, then a GET per footer
    assert {path: g for by_shard in groups.values() for path, g in by_shard.items()} == recorded


@pytest.mark.s3
def test_a_missing_shard_on_s3_is_named_at_start(s3_endpoint, s3_bucket):
    uri = f"{s3_bucket}/w"
    manifest = synthesize(uri, tiles=48, size=16, seed=0, downstream_tiles=0,
                          tiles_per_shard=8, storage=s3_endpoint, progress=lambda _: None)
    gone = manifest.splits["train"][1].path
    shard = TileDataset.open(uri, s3_endpoint, check=False).root.join(*gone.split("/"))
    shard.fs.delete_file(shard.path)
    with pytest.raises(DatasetError, match=rf"shard {uri}/{gone} is listed in dataset\.json "
                       "but missing"):
        TileDataset.open(uri, s3_endpoint)


def test_a_manifest_listing_more_shards_than_exist_is_one_line(world, capsys):
    from mpmae.cli import main

    doc = _edit_manifest(world, lambda doc: doc["splits"]["train"].append(
        {**doc["splits"]["train"][0], "path": "train/part-09999-extra.parquet"}))
    assert len(doc["splits"]["train"]) >= 3
    with pytest.raises(DatasetError, match=r"part-09999-extra\.parquet is listed in "
                       r"dataset\.json but missing: restore it or re-create the dataset"):
        TileDataset.open(str(world))
    assert main(["data", "inspect", str(world)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mpmae: error: shard ") and err.count("\n") == 1
    assert "part-09999-extra.parquet" in err


@pytest.mark.s3
@pytest.mark.parametrize("wrong_by", [-100, 100])
def test_a_shard_of_another_size_than_the_manifest_says_is_named_on_s3(s3_endpoint, s3_bucket,
                                                                        wrong_by):
    """Found by the listing of the split's folder, no footer read (a folder's is the
    test below)."""
    uri = f"{s3_bucket}/w"
    manifest = synthesize(uri, tiles=48, size=16, seed=0, downstream_tiles=0,
                          tiles_per_shard=8, storage=s3_endpoint, progress=lambda _: None)
    entry = manifest.splits["val"][0]
    real = entry.bytes
    entry.bytes += wrong_by
    write_manifest(TileDataset.open(uri, s3_endpoint, check=False).root, manifest)
    with pytest.raises(DatasetError, match=rf"{entry.path} does not match dataset\.json: "
                       rf"{real} bytes, dataset\.json says {entry.bytes}"):
        TileDataset.open(uri, s3_endpoint)


def test_a_footer_that_does_not_match_the_manifest_fails_the_cli_in_one_line(world, capsys):
    """Tiles that disagree with the recorded row groups are refused with the manifest; a
    manifest of older mpmae (no row groups) is found out by the footer read at start-up."""
    from mpmae.cli import main

    doc = _edit_manifest(world, lambda doc: doc["splits"]["test"][0].update(tiles=1))
    with pytest.raises(DatasetError, match=r"splits\.test\[0\]: row_groups: .* tiles says 1"):
        TileDataset.open(str(world))
    doc = _edit_manifest(world, lambda doc: doc["splits"]["test"][0].pop("row_groups"))
    with pytest.raises(DatasetError, match=rf"{doc['splits']['test'][0]['path']} does not "
                       r"match dataset\.json: \d+ tiles, dataset\.json says 1"):
        TileDataset.open(str(world))
    assert main(["data", "inspect", str(world)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mpmae: error: shard ") and err.count("\n") == 1


def test_a_footer_of_other_row_groups_is_named_by_the_read_task_and_verify(world):
    """Start-up reads no footer: the read task that opens the shard compares it with
    dataset.json, and names the shard and `mpmae data verify`; verify names it too."""
    def regroup(doc):
        entry = doc["splits"]["train"][0]
        groups = entry["row_groups"]
        entry["row_groups"] = [sum(groups)] if len(groups) > 1 else [groups[0] - 1, 1]
        return doc

    doc = _edit_manifest(world, regroup)
    entry = doc["splits"]["train"][0]
    found = pq.ParquetFile(world / entry["path"]).metadata
    real = [found.row_group(i).num_rows for i in range(found.num_row_groups)]
    ds = TileDataset.open(str(world))  # the shard is there, of its size
    source = RowGroupSource(ds.root, ds.row_groups("train"), ds.manifest.schema(), seed=None)
    problem = (rf"row groups of {re.escape(str(real))} tiles, dataset\.json says "
               rf"{re.escape(str(entry['row_groups']))}")
    with pytest.raises(DatasetError, match=rf"{entry['path']} does not match dataset\.json: "
                       rf"{problem}\. Run `mpmae data verify`"):
        for task in source.get_read_tasks(source.num_tasks):
            list(task())
    with pytest.raises(DatasetError, match=rf"{entry['path']} \({problem}\)"):
        verify_dataset(str(world), progress=lambda _: None)


def test_a_shard_listed_twice_in_one_split_is_refused_before_any_read(world):
    _edit_manifest(world, lambda doc: doc["splits"]["train"].append(doc["splits"]["train"][0]))
    # check=False: the manifest alone refuses it, no footer is read.
    with pytest.raises(DatasetError, match=r"splits\.train\[\d\]: shard '.*' is listed twice"):
        TileDataset.open(str(world), check=False)


@pytest.mark.parametrize("fields", [("bytes",), ("bytes", "row_groups")])
def test_a_manifest_without_sizes_still_opens(world, fields):
    """Manifests of older mpmae record no sizes (nor row groups: their footers are read,
    a request more each)."""
    def drop(doc):
        for shards in doc["splits"].values():
            for shard in shards:
                for name in fields:
                    del shard[name]

    _edit_manifest(world, drop)
    ds = TileDataset.open(str(world))
    assert sum(sum(g) for g in ds.row_groups("train").values()) == \
        ds.manifest.split_tiles("train")


def test_a_shard_of_another_size_than_the_manifest_says_is_named_in_a_folder(world):
    doc = json.loads((world / "dataset.json").read_text())
    shard = world / doc["splits"]["train"][1]["path"]
    shard.write_bytes(shard.read_bytes() + b"x")
    with pytest.raises(DatasetError, match=rf"{shard.name} does not match dataset\.json: "
                       rf"{shard.stat().st_size} bytes, dataset\.json says "
                       rf"{shard.stat().st_size - 1}\. Run `mpmae data verify`"):
        TileDataset.open(str(world))


def test_parallel_reads_keep_order_and_raise_an_error():
    assert in_parallel(lambda i: i * i, list(range(200))) == [i * i for i in range(200)]
    assert in_parallel(lambda i: i, []) == []

    def read(i: int) -> int:
        if i == 150:
            raise DatasetError(f"shard {i} is bad")
        return i

    with pytest.raises(DatasetError, match="shard 150 is bad"):
        in_parallel(read, list(range(200)))


def test_a_shard_of_another_schema_among_alike_ones_is_named(world):
    """Footer schemas are compared once per distinct schema: one unlike the others is still
    checked, and named (a manifest of older mpmae: its footers are read at start-up)."""
    doc = json.loads((world / "dataset.json").read_text())
    shard = world / doc["splits"]["train"][1]["path"]
    pq.write_table(pq.read_table(shard).drop_columns(["aster"]), shard)
    for shards in doc["splits"].values():
        for entry in shards:
            del entry["row_groups"], entry["bytes"]
    (world / "dataset.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=rf"{shard.name} does not match dataset\.json: "
                       r".*missing column 'aster'"):
        TileDataset.open(str(world))
