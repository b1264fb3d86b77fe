import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mpmae.config import ConfigError
from mpmae.data.format.manifest import read_manifest
from mpmae.data.sources.synth import synthesize
from mpmae.modalities import MODALITIES
from mpmae.storage import resolve


def _table(root, split="train"):
    m = read_manifest(resolve(root))
    return pq.read_table([str(root / s.path) for s in m.shards(split)])


def test_same_seed_same_tiles_other_seed_other_tiles(tmp_path):
    quiet = {"progress": lambda _: None, "downstream_tiles": 0}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        synthesize(str(tmp_path / name), tiles=40, size=16, seed=seed, **quiet)
    a, b, c = (_table(tmp_path / n) for n in "abc")
    assert a.schema == b.schema
    for name in a.column_names:  # NaN ≠ NaN, so compare as arrays
        x, y = a.column(name).combine_chunks(), b.column(name).combine_chunks()
        if hasattr(x, "to_numpy_ndarray"):
            u, v = x.to_numpy_ndarray(), y.to_numpy_ndarray()
            assert np.array_equal(u, v, equal_nan=u.dtype.kind == "f"), name
        else:
            assert x.equals(y), name
    aster = [t.column("aster").combine_chunks().to_numpy_ndarray() for t in (a, c)]
    assert aster[0].shape != aster[1].shape or not np.array_equal(*aster)


def test_every_modality_is_stored_in_its_native_dtype_and_shape(small_world):
    table = _table(small_world)
    for name, mod in MODALITIES.items():
        col = table.column(name).combine_chunks()
        if mod.kind.is_pixel:
            assert col.to_numpy_ndarray().shape[1:] == (mod.num_bands, 16, 16), name
        if not mod.kind.is_pixel and not mod.kind.is_classification:
            assert col.to_numpy_ndarray().shape[1:] == (mod.num_bands,), name
        values = col.to_numpy_ndarray() if hasattr(col, "to_numpy_ndarray") else col.to_numpy()
        assert values.dtype == np.dtype(mod.dtype), name
    assert set(table.column("split").to_pylist()) == {"train"}


def test_no_data_patterns_of_the_real_release_are_present(tmp_path):
    synthesize(str(tmp_path), tiles=256, size=16, seed=1, downstream_tiles=0,
               progress=lambda _: None)
    t = _table(tmp_path)
    s1 = t.column("sentinel1").combine_chunks().to_numpy_ndarray()
    s2 = t.column("sentinel2").combine_chunks().to_numpy_ndarray()
    types = np.array(t.column("s2_type").to_pylist())
    assert np.isnan(s1[:, 2]).mean() > 0.8  # HH mostly missing
    assert (~np.isfinite(s1[:, 4])).any() and (~np.isfinite(s1[:, 0])).any()  # missing orbits
    assert set(types) == {"l1c", "l2a"}
    l1c = s2[types == "l1c"]
    assert (s2[types == "l2a", 10] == 0).all()
    assert (l1c[:, 10][l1c[:, 1] > 0] > 0).all()  # L1C has B10 wherever it has data
    assert (s2 == 0).any()  # swath edges
    dw = t.column("dynamic_world").combine_chunks().to_numpy_ndarray()
    assert (dw == 0).any() and dw.max() <= 9
    era5 = t.column("era5").combine_chunks().to_numpy_ndarray()
    assert np.isnan(era5).any()


def test_modalities_share_latent_fields(tmp_path):
    """Elevation, land cover and S2 agree: water is low and dark in NIR, trees have canopy."""
    synthesize(str(tmp_path), tiles=128, size=16, seed=2, downstream_tiles=0,
               progress=lambda _: None)
    t = _table(tmp_path)
    dw = t.column("dynamic_world").combine_chunks().to_numpy_ndarray()[:, 0]
    s2 = t.column("sentinel2").combine_chunks().to_numpy_ndarray()
    canopy = t.column("canopy_height_eth").combine_chunks().to_numpy_ndarray()[:, 0]
    nir = s2[:, 8].astype(float)
    assert nir[dw == 2].mean() > 3 * nir[dw == 1].mean()  # trees vs water
    assert canopy[dw == 2].mean() > 5 and canopy[(dw != 2) & (dw != 0)].max() == 0


def test_downstream_set_is_labelled_and_readable_without_mpmae(small_world):
    m = read_manifest(resolve(small_world / "downstream"))
    assert m.modalities == ["sentinel2"] and len(m.labels) == 9
    df = pd.read_parquet(small_world / "downstream" / m.shards("train")[0].path)
    assert df["label"].between(0, 8).all() and len(df) == m.shards("train")[0].tiles
    raw = df["sentinel2"].iloc[0]  # pandas sees each tile's raw little-endian bytes
    assert np.frombuffer(raw, "<u2").reshape(13, 16, 16).any() and len(raw) == 13 * 16 * 16 * 2


def test_a_bad_option_names_its_field(tmp_path):
    with pytest.raises(ConfigError, match=r"^size: must be 8 pixels or more, got 4$"):
        synthesize(str(tmp_path), tiles=8, size=4, progress=lambda _: None)
    assert not any(tmp_path.iterdir())


def _files(root):
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _listed_and_present(root):
    m = read_manifest(resolve(root))
    listed = {s.path for shards in m.splits.values() for s in shards}
    present = {p.relative_to(root).as_posix() for p in root.glob("*/*.parquet")}
    return listed, present


def test_a_rerun_with_other_options_is_refused_unless_overwrite(tmp_path, capsys):
    from mpmae.cli import main

    dest = tmp_path / "w"
    small = ["--size", "8", "--tiles-per-shard", "8", "--downstream-tiles", "0"]
    assert main(["data", "synth", str(dest), "--tiles", "16", *small]) == 0
    before = _files(dest)
    capsys.readouterr()
    assert main(["data", "synth", str(dest), "--tiles", "24", *small]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "tiles: 16 → 24" in err and "--overwrite" in err
    assert _files(dest) == before
    assert main(["data", "synth", str(dest), "--tiles", "16", *small]) == 0  # same options
    assert main(["data", "synth", str(dest), "--tiles", "24", *small, "--overwrite"]) == 0
    assert read_manifest(resolve(dest)).num_tiles == 24
    listed, present = _listed_and_present(dest)
    assert listed == present


def test_overwrite_never_leaves_the_dataset_unreadable(tmp_path):
    from mpmae.data.stream.tile_dataset import TileDataset

    dest = tmp_path / "w"
    synthesize(str(dest), tiles=16, size=16, downstream_tiles=0, tiles_per_shard=4,
               progress=lambda _: None)
    synthesize(str(dest), tiles=16, size=8, downstream_tiles=0, tiles_per_shard=4,
               overwrite=True, progress=lambda _: TileDataset.open(str(dest)))
    assert read_manifest(resolve(dest)).tile_size == 8


def test_sentinel2_shows_temperature_only_through_the_land(tmp_path):
    """Leaves are greener (higher NDVI) where ERA5 says it is warm, as a growing season
    needs warmth: the landscape label's temperature zone is visible in S2, indirectly."""
    synthesize(str(tmp_path), tiles=256, size=16, seed=4, downstream_tiles=0,
               progress=lambda _: None)
    t = _table(tmp_path)
    dw = t.column("dynamic_world").combine_chunks().to_numpy_ndarray()[:, 0]
    s2 = t.column("sentinel2").combine_chunks().to_numpy_ndarray().astype(float)
    temp = t.column("era5").combine_chunks().to_numpy_ndarray()[:, 4]  # month's mean 2 m
    red, nir = s2[:, 3], s2[:, 7]
    ndvi = (nir - red) / (nir + red + 1)
    grass = dw == 3
    cold, warm = temp < 5, temp > 18
    grass_ndvi = [ndvi[m[:, None, None] & grass].mean() for m in (cold, warm)]
    assert grass_ndvi[1] > grass_ndvi[0] + 0.1
