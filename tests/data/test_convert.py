"""The MMEarth HDF5 → tile converter, end to end on a tiny release in the official layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fake_mmearth import example_arrays, write_mmearth_release

from mpmae.data.format.band_stats import BandStats
from mpmae.data.format.manifest import MANIFEST_NAME, DatasetError, read_manifest
from mpmae.data.format.schema import presence_bands
from mpmae.data.format.shards import check_shard, open_shard
from mpmae.data.format.tile_array import TileType, column_ndarray
from mpmae.data.sources.convert import convert_mmearth
from mpmae.data.sources.mmearth_h5 import ReleaseError, check_layout, find_release
from mpmae.data.stream.tile_dataset import TileDataset
from mpmae.modalities import MODALITIES, S2_BANDS
from mpmae.storage import fsspec_filesystem, resolve

NUM_TILES, SIZE = 24, 16
SPLITS = {"train": [5, 0, 17, 2, 9, 20, 12, 7, 23, 14, 3, 10, 19, 8, 1, 16],
          "val": [4, 11, 22, 6, 13], "test": [15, 18, 21]}
UNLISTED = {3, 8, 21}  # tiles with no BANDS in tile_info.json: presence from the data
SHARD_MB = 0.1  # ~6 tiles of 16 px per shard, so train has several shards
PIXEL = [n for n in MODALITIES if MODALITIES[n].kind.is_pixel]
VECTORS = ["era5", "lat", "lon", "month"]


def quiet(_line: str) -> None:
    pass


def _bands(row: int, s2_type: str) -> dict:
    """A BANDS entry that differs from the data on purpose: asc VH is declared missing."""
    s2 = [b for b in S2_BANDS if not (s2_type == "l2a" and b == "B10")]
    extras = ["QA60", "SCL", "MSK_CLDPRB"] if s2_type == "l2a" else ["QA60"]
    return {
        "sentinel2": s2 + extras,
        "sentinel1_asc": ["VV"],
        "sentinel1_desc": None if row % 3 == 0 else ["VV", "VH"],
        "aster": ["elevation", "slope"],
        "dynamic_world": ["label"] if row % 4 else None,
        "canopy_height_eth": ["b1", "b2"],  # names we cannot map: presence from the data
        "esa_worldcover": ["Map"],
    }


@pytest.fixture(scope="module")
def source():
    arrays, ids, types = example_arrays(NUM_TILES, SIZE, seed=7)
    bands = {ids[i]: _bands(i, types[i]) for i in range(NUM_TILES) if i not in UNLISTED}
    return arrays, ids, types, bands


@pytest.fixture(scope="module")
def release(source, tmp_path_factory) -> Path:
    """A release whose band_stats.json lacks canopy height and has one NaN mean."""
    arrays, ids, types, bands = source
    folder = tmp_path_factory.mktemp("release")
    write_mmearth_release(folder, arrays, ids, types, SPLITS, tile_info_bands=bands)
    stats_file = folder / "data_tiny_band_stats.json"
    stats = json.loads(stats_file.read_text())
    del stats["canopy_height_eth"]
    stats["sentinel1"]["mean"][0] = float("nan")
    stats_file.write_text(json.dumps(stats))
    return folder


@pytest.fixture(scope="module")
def converted(release, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("converted")
    convert_mmearth(str(release), str(dest), shard_mb=SHARD_MB, parallel=False,
                    progress=quiet)
    return dest


def read_back(root: Path) -> tuple[dict, pa.Table]:
    """dataset.json and all its shards, read with plain json and pyarrow."""
    doc = json.loads((root / MANIFEST_NAME).read_text())
    tables = [pq.read_table(root / s["path"]) for v in doc["splits"].values() for s in v]
    return doc, pa.concat_tables(tables)


def shard(root: Path, split: str, index: int) -> Path:
    """The ``index``-th shard of ``split`` as ``root``'s dataset.json lists it."""
    return root / json.loads((root / MANIFEST_NAME).read_text())["splits"][split][index]["path"]


def column(table: pa.Table, name: str) -> np.ndarray:
    col = table.column(name)
    if isinstance(col.type, TileType):
        return column_ndarray(col)
    return np.asarray(col.to_pylist())


def expected_presence(row: int, s2_type: str) -> dict[str, bool]:
    """Presence per ``modality/band`` as the test release defines it."""
    listed = row not in UNLISTED
    has_desc = row % 3 != 0
    s1 = {"asc_VV": True, "asc_VH": not listed, "desc_VV": has_desc, "desc_VH": has_desc}
    out = {f"sentinel2/{b}": not (s2_type == "l2a" and b == "B10") for b in S2_BANDS}
    out.update({f"sentinel1/{b}": s1.get(b, False) for b in MODALITIES["sentinel1"].bands})
    out["dynamic_world/label"] = row % 4 != 0
    for name in ("aster", "canopy_height_eth", "esa_worldcover", *VECTORS):
        out.update({f"{name}/{b}": True for b in MODALITIES[name].bands})
    return out


def test_every_column_matches_the_source(source, converted):
    arrays, ids, types, _ = source
    doc, table = read_back(converted)
    tile_ids = column(table, "tile_id").tolist()
    assert sorted(tile_ids) == sorted(ids)
    presence_names = presence_bands(list(doc["modalities"]))
    split_of = {ids[r]: k for k, rows in SPLITS.items() for r in rows}
    for row in (0, 1, 3, 6, 9, 21):
        at = tile_ids.index(ids[row])
        assert table.column("s2_type")[at].as_py() == types[row]
        assert table.column("split")[at].as_py() == split_of[ids[row]]
        for name in PIXEL + VECTORS:
            np.testing.assert_array_equal(column(table, name)[at], arrays[name][row])
        for name in ("biome", "eco_region"):
            one_hot = arrays[name][row]
            want = one_hot.argmax() if one_hot.any() else MODALITIES[name].nodata
            assert column(table, name)[at] == want
        got = dict(zip(presence_names, column(table, "bands_present")[at].astype(bool),
                       strict=True))
        assert got == expected_presence(row, types[row])
    assert column(table, "biome")[tile_ids.index(ids[1])] == 255
    assert column(table, "eco_region")[tile_ids.index(ids[1])] == 65535


def test_manifest_splits_stats_and_provenance(source, release, converted):
    arrays, ids, _, _ = source
    manifest = read_manifest(resolve(converted))
    assert {k: manifest.split_tiles(k) for k in manifest.splits} == {
        k: len(v) for k, v in SPLITS.items()}
    assert len(manifest.splits["train"]) == 3
    for split, shards in manifest.splits.items():
        in_split = [t for s in shards
                    for t in pq.read_table(converted / s.path).column("tile_id").to_pylist()]
        assert sorted(in_split) == sorted(ids[r] for r in SPLITS[split])
        root = resolve(converted)
        for info in shards:
            check_shard(root, info, open_shard(root, info.path).metadata, manifest.schema())
    published = json.loads((release / "data_tiny_band_stats.json").read_text())
    assert manifest.stats["sentinel2_l2a"] == published["sentinel2_l2a"]
    assert manifest.stats["sentinel1"]["mean"][0] == 0.0  # NaN → neutral
    assert manifest.stats["sentinel1"]["mean"][1:] == published["sentinel1"]["mean"][1:]
    train = np.asarray(SPLITS["train"])
    recomputed = BandStats()
    recomputed.add("canopy_height_eth", arrays["canopy_height_eth"][train])
    want = recomputed.result()["canopy_height_eth"]
    for stat in ("mean", "std", "min", "max"):
        np.testing.assert_allclose(manifest.stats["canopy_height_eth"][stat], want[stat])
    prov = manifest.provenance
    assert prov["source"]["files"]["h5"] == "data_tiny.h5"
    assert prov["stats"]["computed"] == ["canopy_height_eth"]
    assert set(prov["not_converted"]) == {
        "sentinel2_cloudmask", "sentinel2_cloudprod", "sentinel2_scl"}
    assert prov["converter"]["name"] == "mpmae data convert"
    assert "CC BY 4.0" in manifest.license and "2405.02771" in manifest.license


def test_tiles_are_shuffled_across_shards(source, release, converted, tmp_path):
    _, ids, _, _ = source
    first = pq.read_table(shard(converted, "train", 0)).column("tile_id").to_pylist()
    in_order = [ids[r] for r in SPLITS["train"]]
    assert first != in_order[: len(first)]
    assert first != sorted(first)
    convert_mmearth(str(release), str(tmp_path), shard_mb=SHARD_MB, seed=1,
                    split="train", parallel=False, progress=quiet)
    other = pq.read_table(shard(tmp_path, "train", 0)).column("tile_id").to_pylist()
    assert other != first


def test_split_and_limit(source, release, tmp_path):
    _, ids, _, _ = source
    manifest = convert_mmearth(str(release / "data_tiny.h5"), str(tmp_path), split="val",
                               limit=3, parallel=False, progress=quiet)
    assert list(manifest.splits) == ["val"]
    table = pq.read_table(tmp_path / manifest.splits["val"][0].path)
    assert sorted(table.column("tile_id").to_pylist()) == sorted(
        ids[r] for r in SPLITS["val"][:3])
    assert set(table.column("split").to_pylist()) == {"val"}
    with pytest.raises(ValueError, match="split 'nope'"):
        convert_mmearth(str(release), str(tmp_path / "x"), split="nope", parallel=False,
                        progress=quiet)


def test_rerun_writes_only_the_missing_shard(release, tmp_path):
    convert_mmearth(str(release), str(tmp_path), shard_mb=SHARD_MB, parallel=False,
                    progress=quiet)
    shards = sorted(tmp_path.rglob("*.parquet"))
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in shards}
    manifest_before = json.loads((tmp_path / MANIFEST_NAME).read_text())
    victim = shard(tmp_path, "train", 1)
    victim.unlink()
    lines: list[str] = []
    convert_mmearth(str(release), str(tmp_path), shard_mb=SHARD_MB, parallel=False,
                    progress=lines.append)
    assert [line.split()[1] for line in lines if "wrote" in line] == [
        f"train/{victim.name}:"]
    for path, (data, mtime) in before.items():
        assert path.read_bytes() == data
        if path != victim:
            assert path.stat().st_mtime_ns == mtime
    manifest_after = json.loads((tmp_path / MANIFEST_NAME).read_text())
    for doc in (manifest_before, manifest_after):
        del doc["provenance"]["created"]
    assert manifest_after == manifest_before


def _copy(release: Path, dest: Path) -> Path:
    shutil.copytree(release, dest)
    return dest / "data_tiny.h5"


def test_truncated_h5_is_named_and_leaves_no_manifest(release, tmp_path):
    h5 = _copy(release, tmp_path / "release")
    data = h5.read_bytes()
    h5.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReleaseError, match=r"data_tiny\.h5.*truncated or corrupt"):
        convert_mmearth(str(h5.parent), str(tmp_path / "out"), parallel=False, progress=quiet)
    assert not (tmp_path / "out" / MANIFEST_NAME).exists()


@pytest.fixture(scope="module")
def corrupt(source, release, converted, tmp_path_factory) -> Path:
    """A copy of the release with one garbled sentinel2 chunk, in the last train shard."""
    _, ids, _, _ = source
    last = pq.read_table(shard(converted, "train", 2)).column("tile_id")[0].as_py()
    h5 = _copy(release, tmp_path_factory.mktemp("corrupt") / "release")
    with h5py.File(h5, "r") as f:
        chunk = f["sentinel2"].id.get_chunk_info_by_coord((ids.index(last), 0, 0, 0))
    with open(h5, "r+b") as f:
        f.seek(chunk.byte_offset)
        f.write(b"\xff" * chunk.size)
    return h5.parent


def test_corrupt_chunk_fails_midway_and_a_rerun_completes(release, corrupt, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ReleaseError, match=r"'sentinel2' in .*data_tiny\.h5"):
        convert_mmearth(str(corrupt), str(out), shard_mb=SHARD_MB, parallel=False,
                        progress=quiet)
    assert len(list((out / "train").glob("part-00000-*.parquet"))) == 1
    assert not (out / MANIFEST_NAME).exists()
    with pytest.raises(DatasetError, match="did not finish"):
        read_manifest(resolve(out))
    lines: list[str] = []
    convert_mmearth(str(release), str(out), shard_mb=SHARD_MB, parallel=False,
                    progress=lines.append)
    assert sum("kept" in line for line in lines) == 2
    assert read_manifest(resolve(out)).num_tiles == NUM_TILES


def test_missing_json_is_named(release, tmp_path):
    h5 = _copy(release, tmp_path / "release")
    (h5.parent / "data_tiny_splits.json").unlink()
    with pytest.raises(ReleaseError, match=r"no \*_splits\.json in .*release"):
        convert_mmearth(str(h5.parent), str(tmp_path / "out"), parallel=False, progress=quiet)


def test_bad_band_stats_fail_before_any_shard(release, tmp_path):
    h5 = _copy(release, tmp_path / "release")
    stats_file = h5.parent / "data_tiny_band_stats.json"
    stats = json.loads(stats_file.read_text())
    stats["sentinel1"]["std"] = [1.0, 2.0]
    stats_file.write_text(json.dumps(stats))
    with pytest.raises(ReleaseError, match=r"band_stats\.json: 'sentinel1' needs a 'std' list"):
        convert_mmearth(str(h5), str(tmp_path / "out"), parallel=False, progress=quiet)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage, message", [
    ("drop", r"no dataset\(s\) \['aster'\]"),
    ("reshape", r"'sentinel1' in .*data_tiny\.h5 has shape \(24, 6, 16, 16\)"),
])
def test_bad_layout_is_named(release, tmp_path, damage, message):
    h5 = _copy(release, tmp_path / "release")
    with h5py.File(h5, "r+") as f:
        if damage == "drop":
            del f["aster"]
        else:
            del f["sentinel1"]
            f.create_dataset("sentinel1", data=np.zeros((24, 6, 16, 16), np.float32))
    with pytest.raises(ReleaseError, match=message):
        convert_mmearth(str(h5), str(tmp_path / "out"), parallel=False, progress=quiet)
    assert not (tmp_path / "out").exists()


@pytest.mark.ray
def test_ray_tasks_write_the_same_shards(ray_local, release, converted, corrupt, tmp_path):
    manifest = convert_mmearth(str(release), str(tmp_path / "ok"), shard_mb=SHARD_MB,
                               num_workers=2, progress=quiet)
    assert manifest.splits == read_manifest(resolve(converted)).splits
    for info in (s for v in manifest.splits.values() for s in v):
        assert (tmp_path / "ok" / info.path).read_bytes() == (converted / info.path).read_bytes()
    with pytest.raises(ReleaseError, match=r"'sentinel2' in .*data_tiny\.h5"):
        convert_mmearth(str(corrupt), str(tmp_path / "bad"), shard_mb=SHARD_MB,
                        num_workers=2, progress=quiet)
    assert not (tmp_path / "bad" / MANIFEST_NAME).exists()
    assert ray_local.is_initialized()  # the caller's Ray is left running


@pytest.mark.s3
def test_s3_source_and_destination(s3_endpoint, s3_bucket, release, converted):
    bucket = resolve(s3_bucket, s3_endpoint)
    s3 = fsspec_filesystem(bucket)
    for path in release.iterdir():
        s3.put(str(path), f"{bucket.path}/release/{path.name}")
    dest = f"{s3_bucket}/tiles"
    manifest = convert_mmearth(f"{s3_bucket}/release", dest, storage=s3_endpoint,
                               shard_mb=SHARD_MB, parallel=False, progress=quiet)
    root = resolve(dest, s3_endpoint)
    assert read_manifest(root).splits == manifest.splits
    for info in (s for v in manifest.splits.values() for s in v):
        loc = root.join(*info.path.split("/"))
        assert loc.read_bytes() == (converted / info.path).read_bytes()
        table = pq.read_table(loc.path, filesystem=root.fs)
        assert table.num_rows == info.tiles


@pytest.mark.parametrize("name", ["../escape", "/abs", "a/b", ".."])
def test_a_split_name_cannot_leave_the_dataset(release, tmp_path, name):
    h5 = _copy(release, tmp_path / "release")
    (h5.parent / "data_tiny_splits.json").write_text(json.dumps({name: [0, 1]}))
    out = tmp_path / "deep" / "out"
    with pytest.raises(ReleaseError, match=r"splits\.json: split name .* is not a plain name"):
        convert_mmearth(str(h5), str(out), parallel=False, progress=quiet)
    assert sorted(p.name for p in tmp_path.rglob("*.parquet")) == []


def _still_readable(root: Path):
    """A progress callback that checks, at every line, that ``root``'s dataset opens and
    every shard it lists matches its footer (it is called after every shard written)."""
    def check(_line: str) -> None:
        TileDataset.open(str(root))
    return check


def _listed_and_present(root: Path) -> tuple[set, set]:
    doc = json.loads((root / MANIFEST_NAME).read_text())
    listed = {s["path"] for v in doc["splits"].values() for s in v}
    present = {p.relative_to(root).as_posix() for p in root.rglob("*.parquet")}
    return listed, present


def test_a_rerun_with_other_options_is_refused_and_the_dataset_kept(release, tmp_path, capsys):
    from mpmae.cli import main

    dest = tmp_path / "out"
    convert_mmearth(str(release), str(dest), limit=4, parallel=False, progress=quiet)
    before = {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert main(["data", "convert", str(release), str(dest), "--limit", "5",
                 "--parallel", "false"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "limit: 4 → 5" in err and "--overwrite" in err
    assert {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()} == before


def test_overwrite_keeps_the_old_dataset_readable_until_the_new_one_is_complete(
        release, tmp_path):
    dest = tmp_path / "out"
    convert_mmearth(str(release), str(dest), limit=4, shard_mb=SHARD_MB, parallel=False,
                    progress=quiet)
    old_shards, _ = _listed_and_present(dest)
    manifest = convert_mmearth(str(release), str(dest), shard_mb=SHARD_MB, parallel=False,
                               overwrite=True, progress=_still_readable(dest))
    assert manifest.num_tiles == NUM_TILES
    listed, present = _listed_and_present(dest)
    assert listed == present and not old_shards & listed  # new names; the old ones removed


def test_a_failed_overwrite_leaves_the_old_dataset_and_a_rerun_no_orphans(
        release, corrupt, tmp_path):
    dest = tmp_path / "out"
    convert_mmearth(str(release), str(dest), split="train", shard_mb=SHARD_MB,
                    parallel=False, progress=quiet)
    with pytest.raises(ReleaseError, match=r"'sentinel2' in .*data_tiny\.h5"):
        convert_mmearth(str(corrupt), str(dest), shard_mb=SHARD_MB, parallel=False,
                        overwrite=True, progress=_still_readable(dest))
    assert read_manifest(resolve(dest)).num_tiles == len(SPLITS["train"])
    convert_mmearth(str(release), str(dest), shard_mb=SHARD_MB, parallel=False,
                    overwrite=True, progress=quiet)
    listed, present = _listed_and_present(dest)
    assert listed == present and read_manifest(resolve(dest)).num_tiles == NUM_TILES


def test_a_chunk_missing_from_the_hdf5_index_fails_the_convert(release, tmp_path):
    """HDF5 reads a chunk its index lacks as fill values: a damaged index must not turn
    into tiles of zeros."""
    h5 = _copy(release, tmp_path / "release")
    victim = SPLITS["train"][2]
    with h5py.File(h5, "r+") as f:
        values = f["aster"][()]
        del f["aster"]
        aster = f.create_dataset("aster", values.shape, values.dtype,
                                 chunks=(1, *values.shape[1:]), compression="gzip")
        for row in range(len(values)):
            if row != victim:
                aster[row] = values[row]
    with pytest.raises(ReleaseError, match=rf"'aster' in .*data_tiny\.h5 stores no data for "
                                           rf"row {victim}"):
        convert_mmearth(str(h5), str(tmp_path / "out"), parallel=False, progress=quiet)


def test_damaged_hdf5_metadata_is_a_release_error_naming_the_file(release, tmp_path):
    """A bit flipped anywhere in the file's first object headers: the layout check either
    passes or says the file is damaged, never a raw h5py traceback."""
    h5 = _copy(release, tmp_path / "release")
    good = h5.read_bytes()
    refused = 0
    for position in range(0, 1400, 11):
        damaged = bytearray(good)
        damaged[position] ^= 0x20
        h5.write_bytes(bytes(damaged))
        try:
            with find_release(str(h5)).open_h5() as f:
                check_layout(f, str(h5))
        except ReleaseError as e:
            assert "data_tiny.h5" in str(e)
            refused += 1
    assert refused > 0
