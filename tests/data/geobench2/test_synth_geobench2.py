"""``mpmae data synth-geobench2``: seven tiny datasets under GEO-Bench-2's names, files and
bands, read back by our tortilla reader."""

from __future__ import annotations

import numpy as np

from mpmae.data.geobench2.catalog import Task, dataset_info
from mpmae.data.geobench2.dataset import GeoBench2Dataset
from mpmae.data.sources.synth_geobench2 import DATASETS, write_geobench2_sets


def test_the_seven_datasets_read_back_with_their_tasks_bands_and_labels(tmp_path):
    write_geobench2_sets(tmp_path, tiles=24, size=8, seed=1, progress=lambda _: None)
    opened = {name: GeoBench2Dataset.open(tmp_path / name) for name in DATASETS}
    assert {n: d.task for n, d in opened.items()} == {
        "so2sat": Task.CLASSIFICATION, "benv2": Task.MULTI_LABEL,
        "cloudsen12": Task.SEGMENTATION, "dynamic_earthnet": Task.SEGMENTATION,
        "biomassters": Task.REGRESSION, "fotw": Task.SEGMENTATION,
        "pastis": Task.SEGMENTATION}
    for dataset in opened.values():  # every split holds samples, the same ones in each set
        assert [len(dataset.samples(s)) for s in ("train", "validation", "test")] == [
            len(opened["so2sat"].samples(s)) for s in ("train", "validation", "test")]
    first = {n: d.read_sample(d.samples("train")[0]) for n, d in opened.items()}
    so2sat, benv2, cloud = first["so2sat"], first["benv2"], first["cloudsen12"]
    dynamic = first["dynamic_earthnet"]
    assert "B01" not in so2sat.bands and {"B01", "B09", "VV"} <= set(benv2.bands)
    assert 0 <= so2sat.label < 9  # the world's landscape classes
    assert benv2.label.sum() >= 1
    assert cloud.label.shape == (8, 8) and set(np.unique(cloud.label)) <= {0, 1, 2, 3}
    # one world: the same tile's B8A in every dataset
    assert np.array_equal(so2sat.bands["B8A"], cloud.bands["B8A"])
    assert np.array_equal(benv2.bands["B8A"], cloud.bands["B8A"])
    # Dynamic EarthNet: its one S2 image (by id, beside the dated PlanetScope items; those
    # are not read) and its mask, the last item
    assert set(dynamic.bands) == set(dataset_info("dynamic_earthnet").modalities[1].bands)
    assert np.array_equal(dynamic.bands["B8A"], cloud.bands["B8A"])
    assert dynamic.label.shape == (8, 8) and dynamic.label.max() < 7
    # BioMassters: its S2 months (2 or 3 per sample) as (T, H, W) bands, S1 not read, the
    # AGB map (Mg/ha) divided by the benchmark's 289.89
    biomass = [opened["biomassters"].read_sample(s)
               for s in opened["biomassters"].samples("train")[:2]]
    assert set(biomass[0].bands) == set(dataset_info("biomassters").modalities[1].bands)
    assert {b.bands["B8A"].shape for b in biomass} == {(3, 8, 8), (2, 8, 8)}
    months = biomass[0].bands["B8A"]
    assert np.allclose(months[1], months[0] * 1.05, rtol=1e-3)  # brightened each month
    assert biomass[0].label.dtype == np.float32 and biomass[0].label.shape == (8, 8)
    assert np.allclose(biomass[0].label * 289.89 / 25.0, np.round(biomass[0].label * 289.89
                                                                   / 25.0), atol=1e-3)
    # Fields of the World: windows A and B as two dates of the tile's B04 (its "red")
    fotw = first["fotw"]
    assert fotw.bands["red"].shape == (2, 8, 8) and fotw.label.max() < 3
    assert np.allclose(fotw.bands["red"][1], fotw.bands["red"][0] * 1.05, rtol=1e-3)
    assert np.allclose(fotw.bands["nir"][0], cloud.bands["B08"])
    # PASTIS: its HDF5 S2 series (2 or 3 dates, int16 as it ships) and mask band 0
    pastis = [opened["pastis"].read_sample(s) for s in opened["pastis"].samples("train")[:2]]
    assert {p.bands["B8A"].shape for p in pastis} == {(3, 8, 8), (2, 8, 8)}
    assert "B01" not in pastis[0].bands and pastis[0].bands["B8A"].dtype == np.int16
    assert pastis[0].label.shape == (8, 8) and pastis[0].label.max() < 20
