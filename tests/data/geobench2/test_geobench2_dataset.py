"""A GEO-Bench-2 dataset read as the evaluation reads GEO-Bench v1: samples by split,
bands by name matched to MMEarth's (fills announced), labels, the benchmark's statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from geobench2_fixtures import image, write_benv2, write_so2sat

from mpmae.data.geobench2.catalog import DATASETS, GROUPS, REQUIRED_SEEDS, Task
from mpmae.data.geobench2.dataset import GeoBench2Dataset
from mpmae.data.geobench2.errors import GeoBench2Error
from mpmae.data.geobench2.stats import stats_file

MMEARTH_S2 = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8A", "B8", "B9", "B11", "B12")


def test_the_table_holds_the_leaderboard_s_19_datasets() -> None:
    assert len(DATASETS) == 19 and REQUIRED_SEEDS == 5
    assert {g for d in DATASETS.values() for g in d.groups} == set(GROUPS)
    core = sorted(d.name for d in DATASETS.values() if "Core" in d.groups)
    assert len(core) == 12
    assert {d.task for d in DATASETS.values()} == set(Task)


def test_samples_by_split_bands_and_multi_label(tmp_path: Path) -> None:
    dataset = GeoBench2Dataset.open(write_benv2(tmp_path / "benv2").parent)
    assert [len(dataset.samples(s)) for s in ("train", "validation", "test")] == [2, 1, 1]
    sample = dataset.read_sample(dataset.samples("train")[1])
    np.testing.assert_array_equal(sample.bands["B8A"], image(1, 12)[8])  # file order
    assert sample.bands["VV"].dtype == np.float32
    assert np.flatnonzero(sample.label).tolist() == [1, 18]
    match = dataset.match_bands(MMEARTH_S2)
    assert match.sources[MMEARTH_S2.index("B8A")] == "B8A" and not match.filled


def test_mmearth_fills_and_statistics_of_a_scheme(tmp_path: Path) -> None:
    dataset = GeoBench2Dataset.open(write_so2sat(tmp_path / "so2sat").parent)
    sample = dataset.read_sample(dataset.samples("test")[0])
    assert sample.label == 3
    match = dataset.match_bands(MMEARTH_S2)
    assert match.filled == {"B1": "B2", "B9": "B8A"}
    path = stats_file(tmp_path / "stats", "clip_rescale", "so2sat")
    path.parent.mkdir(parents=True)
    s2 = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
    path.write_text(json.dumps({"input_stats": {"image_s2": {
        "band_names": s2, "mean": list(range(10)), "std": [2.0] * 10}}}))
    stats = dataset.input_stats(match, path)
    assert stats.mean[0] == 0.0 and stats.mean[MMEARTH_S2.index("B9")] == 7.0


def test_unsupported_tasks_say_so(tmp_path: Path) -> None:
    dataset = GeoBench2Dataset.open(write_so2sat(tmp_path / "so2sat").parent)
    nzcattle = GeoBench2Dataset(dataset.folder, DATASETS["nzcattle"], dataset.samples_by_split)
    with pytest.raises(GeoBench2Error, match="detection is not supported yet"):
        nzcattle.read_sample(dataset.samples("train")[0])
