"""Every bad input gets an error that names the file or field and says what to do."""

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from mpmae.data.format.manifest import DatasetError
from mpmae.data.format.tile_array import tile_array
from mpmae.data.sources.synth import synthesize
from mpmae.data.stream.row_group_source import RowGroupSource
from mpmae.data.stream.tile_dataset import TileDataset, guarded, torch_batches
from mpmae.modalities import resolve_pretext
from mpmae.storage import StorageError, StorageOptions


@pytest.fixture
def world(small_world, tmp_path):
    shutil.copytree(small_world, tmp_path / "w")
    return tmp_path / "w"


def _first_shard(world):
    return world / json.loads((world / "dataset.json").read_text())["splits"]["train"][0]["path"]


def test_truncated_shard_is_named_at_start_by_its_size(world):
    shard = _first_shard(world)
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with pytest.raises(DatasetError, match=rf"{shard.name} does not match dataset\.json: \d+ "
                       r"bytes, dataset\.json says \d+\. Run `mpmae data verify`"):
        TileDataset.open(str(world))


def test_truncated_shard_of_an_older_manifest_is_named(world):
    shard = _first_shard(world)
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    _edit_manifest(world, _as_older)
    with pytest.raises(DatasetError, match=rf"{shard.name}.*corrupt or truncated.*re-run"):
        TileDataset.open(str(world))


# Where a shard that differs from dataset.json is found: with a manifest of older mpmae (no
# row groups, no sizes) start-up reads and checks every footer; with one that records the
# replaced shard's size start-up (a listing) passes and the read task that opens it names it.
FOUND = ["older manifest, at start-up", "recorded size, in the read task"]


def _open_and_read(world, shard, found: str) -> None:
    if found == FOUND[0]:
        _edit_manifest(world, _as_older)
        TileDataset.open(str(world))
        return
    _edit_manifest(world, _recorded_size(shard))
    ds = TileDataset.open(str(world))  # the shard is there, of the size dataset.json says
    source = RowGroupSource(ds.root, ds.row_groups("train"), ds.manifest.schema(), seed=None)
    for task in source.get_read_tasks(source.num_tasks):
        list(task())


@pytest.mark.parametrize("found", FOUND)
def test_missing_column_is_named(world, found):
    shard = _first_shard(world)
    pq.write_table(pq.read_table(shard).drop_columns(["sentinel1"]), shard)
    with pytest.raises(DatasetError, match=rf"{shard.name}.*missing column 'sentinel1'"):
        _open_and_read(world, shard, found)


@pytest.mark.parametrize("found", FOUND)
def test_wrong_dtype_or_shape_is_named(world, found):
    shard = _first_shard(world)
    table = pq.read_table(shard)
    s2 = table.column("sentinel2").combine_chunks().to_numpy_ndarray().astype(np.float32)
    i = table.schema.get_field_index("sentinel2")
    table = table.set_column(i, "sentinel2", tile_array(s2))
    pq.write_table(table, shard)
    with pytest.raises(DatasetError, match=r"column 'sentinel2' is tile float32\[13, 16, 16\], "
                       r"expected tile uint16\[13, 16, 16\]"):
        _open_and_read(world, shard, found)


def test_manifest_that_does_not_match_the_shards(world):
    doc = json.loads((world / "dataset.json").read_text())
    doc["splits"]["train"][0]["tiles"] += 5
    (world / "dataset.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=r"splits\.train\[0\]: row_groups: .* tiles says"):
        TileDataset.open(str(world))
    _edit_manifest(world, _as_older)
    with pytest.raises(DatasetError, match=r"\d+ tiles, dataset\.json says"):
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
                          access_key_id="k", secret_access_key="s3cr3t", retries=2)
    with pytest.raises(StorageError, match=r"s3://data/world.*127\.0\.0\.1:9") as info:
        TileDataset.open("s3://data/world", opts)
    assert "s3cr3t" not in str(info.value)


def test_pretext_set_needing_absent_modalities(small_world):
    ds = TileDataset.open(str(small_world / "downstream"))
    with pytest.raises(DatasetError, match=r"needs \['sentinel1'.*choose a smaller"):
        ds.read("train", resolve_pretext("pix"))


def _stream(ds, **read):
    batches = torch_batches(ds.read("train", resolve_pretext("S2"), seed=None, **read), 4,
                            drop_last=False)
    return sum(len(b["sentinel2"]) for b in guarded(batches))


@pytest.mark.ray
def test_a_shard_damaged_inside_stops_or_is_skipped_as_configured(ray_local, tmp_path):
    root = tmp_path / "c"
    synthesize(str(root), tiles=48, size=16, seed=0, downstream_tiles=0, tiles_per_shard=8,
               progress=lambda _: None)
    shard = _first_shard(root)
    data = bytearray(shard.read_bytes())
    middle = len(data) // 3
    data[middle : middle + 4000] = bytes(4000)  # the footer stays intact
    shard.write_bytes(bytes(data))
    ds = TileDataset.open(str(root))  # the footer check cannot see it
    with pytest.raises(DatasetError) as info:
        _stream(ds)
    # The read task's own error, not Ray's wrapper with a worker traceback.
    assert type(info.value) is DatasetError and "Traceback" not in str(info.value)
    assert str(info.value).startswith(f"shard {shard} has corrupt data in row group 0")
    damaged = pq.ParquetFile(shard).metadata.num_rows
    assert _stream(ds, on_bad_shard="skip") == ds.manifest.split_tiles("train") - damaged


def _edit_manifest(world, edit) -> None:
    doc = json.loads((world / "dataset.json").read_text())
    doc = edit(doc) or doc
    (world / "dataset.json").write_text(json.dumps(doc))


def _as_older(doc: dict) -> None:
    """A manifest as older mpmae wrote it: no row groups, no sizes."""
    for shards in doc["splits"].values():
        for shard in shards:
            shard.pop("row_groups", None)
            shard.pop("bytes", None)


def _recorded_size(shard):
    """An edit recording ``shard``'s present size in the manifest (as if a shard of the
    recorded size had replaced it)."""
    def edit(doc: dict) -> None:
        for entry in (e for shards in doc["splits"].values() for e in shards):
            if shard.as_posix().endswith("/" + entry["path"]):
                entry["bytes"] = shard.stat().st_size
    return edit


def _set(path: str, value):
    """An edit setting the dotted ``path`` (list indices as numbers) of the manifest."""
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]

    def edit(doc):
        node = doc
        for key in parents:
            node = node[key]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return edit


_DELETE = object()
BAD_MANIFESTS = {
    "not an object": (lambda doc: [doc], r"is not an mpmae tile manifest \(a JSON object"),
    "empty splits": (_set("splits", {}), r"splits: must map split names .* lists none"),
    "empty split": (_set("splits.val", []), r"splits\.val: must list at least one shard"),
    "stats without std": (_set("stats.aster.std", _DELETE), r"stats\.aster\.std: must be a list"),
    "wrong band count": (_set("stats.sentinel1.mean", [0.0]),
                         r"stats\.sentinel1\.mean: must be a list of 8 numbers"),
    "zero std": (_set("stats.era5.std", [0.0] * 12), r"stats\.era5\.std: must be positive"),
    "NaN mean": (_set("stats.aster.mean", [float("nan"), 1.0]),
                 r"stats\.aster\.mean: must hold finite numbers"),
    "tile_size text": (_set("tile_size", "16"), r"tile_size: must be a whole number.*'16'"),
    "tile_size fraction": (_set("tile_size", 16.5), r"tile_size: must be a whole number.*16\.5"),
    "shard path up": (_set("splits.train.0.path", "../../outside.parquet"),
                      r"splits\.train\[0\]: shard path '\.\./\.\./outside\.parquet' is not a "
                      r"relative path inside the dataset"),
    "shard path absolute": (_set("splits.train.0.path", "/etc/passwd"),
                            r"splits\.train\[0\]: shard path '/etc/passwd'"),
    "shard path URL": (_set("splits.train.0.path", "s3://other/x.parquet"),
                       r"splits\.train\[0\]: shard path 's3://other/x\.parquet'"),
    "split name up": (lambda doc: doc["splits"].update({"../up": doc["splits"].pop("val")}),
                      r"splits: split name '\.\./up' is not a plain name"),
    "row groups not a list": (_set("splits.train.0.row_groups", "64"),
                              r"splits\.train\[0\]: row_groups: must list each row group's "
                              r"tiles \(positive whole numbers\), got '64'"),
    "row groups of too few tiles": (_set("splits.train.0.row_groups", [1]),
                                    r"splits\.train\[0\]: row_groups: its 1 row groups hold 1 "
                                    r"tiles, tiles says \d+"),
    "shard listed twice": (lambda doc: doc["splits"]["val"].append(doc["splits"]["train"][0]),
                           r"splits\.val\[\d\]: shard '.*' is listed twice"),
}


@pytest.mark.parametrize("case", BAD_MANIFESTS)
def test_a_bad_manifest_is_one_line_naming_the_field(world, case, capsys):
    from mpmae.cli import main

    edit, message = BAD_MANIFESTS[case]
    _edit_manifest(world, edit)
    with pytest.raises(DatasetError, match=rf"dataset\.json.*{message}"):
        TileDataset.open(str(world), check=False)
    assert main(["data", "inspect", str(world)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mpmae: error: ") and err.count("\n") == 1
