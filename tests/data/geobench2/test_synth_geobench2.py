"""``mpmae data synth-geobench2``: four tiny datasets under GEO-Bench-2's names, files and
bands, read back by our tortilla reader."""

from __future__ import annotations

import numpy as np

from mpmae.data.geobench2.catalog import Task, dataset_info
from mpmae.data.geobench2.dataset import GeoBench2Dataset
from mpmae.data.sources.synth_geobench2 import DATASETS, write_geobench2_sets


def test_the_four_datasets_read_back_with_their_tasks_bands_and_labels(tmp_path):
    write_geobench2_sets(tmp_path, tiles=24, size=8, seed=1, progress=lambda _: None)
    opened = {name: GeoBench2Dataset.open(tmp_path / name) for name in DATASETS}
    assert {n: d.task for n, d in opened.items()} == {
        "so2sat": Task.CLASSIFICATION, "benv2": Task.MULTI_LABEL,
        "cloudsen12": Task.SEGMENTATION, "dynamic_earthnet": Task.SEGMENTATION}
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
