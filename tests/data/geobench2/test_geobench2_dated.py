"""Dated GEO-Bench-2 datasets: Dynamic EarthNet's one Sentinel-2 image read beside its
PlanetScope series (zeros where a sample has none, as the benchmark's loader reads it;
the PlanetScope series itself is not read), and BioMassters' dated S2 months."""

from __future__ import annotations

import numpy as np
import pytest

from mpmae.data.geobench2.catalog import DATASETS, s2_readable
from mpmae.data.geobench2.dataset import GeoBench2Dataset
from mpmae.data.geobench2.errors import GeoBench2Error
from mpmae.data.geobench2.writer import Entry, geotiff_bytes, write_tortilla


def _sample(i: int, split: str, with_s2: bool) -> Entry:
    where = {"tortilla:data_split": split}
    planet = [Entry(f"planet_{t}", geotiff_bytes(np.full((4, 8, 8), t, np.uint16)),
                    metadata=where) for t in range(2)]
    s2 = [Entry("s2", geotiff_bytes(np.full((12, 8, 8), 7 + i, np.uint16)), metadata=where)]
    mask = Entry("mask", geotiff_bytes(np.full((1, 8, 8), i % 7, np.uint8)), metadata=where)
    return Entry(f"d{i}", [*planet, *(s2 if with_s2 else []), mask], metadata=where)


def test_dynamic_earthnet_reads_its_s2_image_by_id_and_zeros_without_one(tmp_path):
    folder = tmp_path / "dynamic_earthnet"
    folder.mkdir()
    files = DATASETS["dynamic_earthnet"].files
    for part, file in enumerate(files):
        write_tortilla(folder / file, [_sample(part, "train", with_s2=part != 1)])
    data = GeoBench2Dataset.open(folder)
    read = [data.read_sample(s) for s in data.samples("train")]
    assert [r.bands["B10"][0, 0] for r in read] == [7, 0, 9]  # d1 has no s2 item
    assert [int(r.label[0, 0]) for r in read] == [0, 1, 2]
    assert "r" not in read[0].bands  # the PlanetScope series is not read


def test_kuro_siwo_is_the_one_dated_dataset_without_a_readable_sentinel2():
    dated = {n for n, info in DATASETS.items() if info.temporal}
    assert {n for n in dated if s2_readable(DATASETS[n])} == {
        "dynamic_earthnet", "biomassters", "pastis", "pastis_r"}


def _biomass(i: int, s2_sizes: tuple[int, ...]) -> Entry:
    where = {"tortilla:data_split": "train"}
    s1 = [Entry(f"S1_{t}", geotiff_bytes(np.full((4, 8, 8), -9999, np.float32)),
                metadata={**where, "modality": "S1"}) for t in range(2)]
    s2 = [Entry(f"S2_{t}", geotiff_bytes(np.full((10, n, n), t + 1, np.uint16)),
                metadata={**where, "modality": "S2"}) for t, n in enumerate(s2_sizes)]
    agb = Entry("AGB", geotiff_bytes(np.full((1, 8, 8), 289.89 * i, np.float32)),
                metadata={**where, "modality": "AGB"})
    return Entry(f"b{i}", [*s1, *s2, agb], metadata=where)


def test_biomassters_reads_its_s2_months_zeros_without_any_and_refuses_mixed_sizes(tmp_path):
    folder = tmp_path / "biomassters"
    folder.mkdir()
    [file] = DATASETS["biomassters"].files
    write_tortilla(folder / file, [_biomass(1, (8, 8, 8)), _biomass(2, ()),
                                   _biomass(3, (8, 4))])
    data = GeoBench2Dataset.open(folder)
    first, empty, mixed = data.samples("train")
    read = data.read_sample(first)
    assert read.bands["B02"].shape == (3, 8, 8) and "VV_asc" not in read.bands
    assert [int(v) for v in read.bands["B12"][:, 0, 0]] == [1, 2, 3]  # footer order
    np.testing.assert_allclose(read.label, 1.0, rtol=1e-6)  # AGB / 289.89
    assert not data.read_sample(empty).bands["B02"].any()  # one date of zeros
    assert data.read_sample(empty).bands["B02"].shape == (1, 8, 8)
    with pytest.raises(GeoBench2Error, match="S2 dates differ in size"):
        data.read_sample(mixed)
