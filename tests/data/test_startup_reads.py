"""Start-up at many shards: one request per shard footer (its size from dataset.json, no
HEAD), and every shard that does not match dataset.json named before any read starts."""

import json
import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mpmae.data.format.manifest import DatasetError, write_manifest
from mpmae.data.sources.synth import synthesize
from mpmae.data.stream.tile_dataset import TileDataset, in_parallel
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


@pytest.mark.s3
def test_opening_costs_one_request_per_shard_on_s3(s3_endpoint, s3_bucket):
    uri = f"{s3_bucket}/w"
    synthesize(uri, tiles=120, size=16, seed=0, downstream_tiles=0, tiles_per_shard=2,
               storage=s3_endpoint, progress=lambda _: None)
    proxy = s3_proxy.S3Proxy(s3_endpoint.endpoint_url, s3_proxy.Weather(latency_s=0.0))
    opts = StorageOptions(proxy.start(), s3_endpoint.region, s3_endpoint.access_key_id,
                          s3_endpoint.secret_access_key)
    try:
        ds = TileDataset.open(uri, opts)
        footers = {split: ds.footers(split) for split in ds.manifest.splits}
    finally:
        proxy.stop()
    shards = _count_shards(ds)
    assert shards >= 60 and sum(len(f) for f in footers.values()) == shards
    # The manifest's GET, then one ranged GET per footer; footers() reads nothing again.
    assert proxy.counts.requests <= shards + 2


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
    """The size matters where the footer is read at it, on object storage (a local file is
    read at its real size)."""
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
    from mpmae.cli import main

    doc = _edit_manifest(world, lambda doc: doc["splits"]["test"][0].update(tiles=1))
    with pytest.raises(DatasetError, match=rf"{doc['splits']['test'][0]['path']} does not "
                       r"match dataset\.json: \d+ tiles, dataset\.json says 1"):
        TileDataset.open(str(world))
    assert main(["data", "inspect", str(world)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mpmae: error: shard ") and err.count("\n") == 1


def test_a_shard_listed_twice_in_one_split_is_refused_before_any_read(world):
    _edit_manifest(world, lambda doc: doc["splits"]["train"].append(doc["splits"]["train"][0]))
    # check=False: the manifest alone refuses it, no footer is read.
    with pytest.raises(DatasetError, match=r"splits\.train\[\d\]: shard '.*' is listed twice"):
        TileDataset.open(str(world), check=False)


def test_a_manifest_without_sizes_still_opens(world):
    """Manifests of older mpmae record no sizes: their footers cost a request more each."""
    def drop_sizes(doc):
        for shards in doc["splits"].values():
            for shard in shards:
                del shard["bytes"]

    _edit_manifest(world, drop_sizes)
    ds = TileDataset.open(str(world))
    assert sum(f.num_rows for f in ds.footers("train").values()) == \
        ds.manifest.split_tiles("train")


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
    checked, and named."""
    doc = json.loads((world / "dataset.json").read_text())
    shard = world / doc["splits"]["train"][1]["path"]
    pq.write_table(pq.read_table(shard).drop_columns(["aster"]), shard)
    with pytest.raises(DatasetError, match=rf"{shard.name} does not match dataset\.json: "
                       r".*missing column 'aster'"):
        TileDataset.open(str(world))
