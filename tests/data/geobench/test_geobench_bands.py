"""Band matching by name, the So2Sat fill, the encoder input and its normalisation."""

from __future__ import annotations

import numpy as np
import pytest
from geobench_layout import (
    BAND_STATS,
    BAND_VALUE,
    bigearthnet_like,
    eurosat_like,
    so2sat_like,
)

from mpmae.data.geobench.bands import input_array, match_bands, our_band_name
from mpmae.data.geobench.dataset import GeoBenchDataset
from mpmae.data.geobench.errors import GeoBenchError
from mpmae.data.geobench.normalise import input_stats, normalise
from mpmae.data.geobench.task_specs import BandSpec
from mpmae.modalities import S2_BANDS, S2_INPUT_BANDS

# GEO-Bench's name for each of our bands
GEOBENCH_NAME = {
    "B1": "01 - Coastal aerosol", "B2": "02 - Blue", "B3": "03 - Green", "B4": "04 - Red",
    "B5": "05 - Vegetation Red Edge", "B6": "06 - Vegetation Red Edge",
    "B7": "07 - Vegetation Red Edge", "B8": "08 - NIR", "B8A": "08A - Vegetation Red Edge",
    "B9": "09 - Water vapour", "B10": "10 - SWIR - Cirrus", "B11": "11 - SWIR",
    "B12": "12 - SWIR",
}


def _inputs(dataset, input_bands, sample="s0000"):
    match = dataset.match_bands(input_bands)
    return match, input_array(dataset.read_sample(sample).bands, match, sample)


@pytest.fixture
def eurosat(tmp_path):
    return GeoBenchDataset.open(eurosat_like(tmp_path / "e"))


@pytest.fixture
def so2sat(tmp_path):
    return GeoBenchDataset.open(so2sat_like(tmp_path / "s"))


def test_every_band_is_matched_by_name_in_the_encoder_order(eurosat):
    match, x = _inputs(eurosat, S2_INPUT_BANDS)
    assert match.sources == tuple(GEOBENCH_NAME[b] for b in S2_INPUT_BANDS)
    assert not match.filled
    assert x.shape == (12, 8, 8) and x.dtype == np.float32
    assert [x[i, 0, 0] for i in range(12)] == [BAND_VALUE[s] for s in match.sources]


@pytest.mark.parametrize(("wanted", "other"), [("B8A", "B8"), ("B8", "B8A")])
def test_b8_and_b8a_are_never_confused(eurosat, wanted, other):
    _, x = _inputs(eurosat, (wanted,))
    assert (x[0] == BAND_VALUE[GEOBENCH_NAME[wanted]]).all()
    assert BAND_VALUE[GEOBENCH_NAME[wanted]] != BAND_VALUE[GEOBENCH_NAME[other]]


def test_our_order_differs_from_geobench_order(eurosat):
    # pretraining puts B8A before B8; GEO-Bench the other way round
    _, x = _inputs(eurosat, ("B8A", "B8"))
    assert x[:, 0, 0].tolist() == [BAND_VALUE["08A - Vegetation Red Edge"],
                                   BAND_VALUE["08 - NIR"]]


def test_so2sat_fills_b1_and_b9_and_says_so(so2sat):
    match, x = _inputs(so2sat, S2_INPUT_BANDS)
    assert dict(match.filled) == {"B1": "B2", "B9": "B8A"}
    channel = {b: x[i, 0, 0] for i, b in enumerate(S2_INPUT_BANDS)}
    assert channel["B1"] == BAND_VALUE["02 - Blue"]
    assert channel["B9"] == BAND_VALUE["08A - Vegetation Red Edge"]
    # the Sentinel-1 band "01 - VH.Real" is not Sentinel-2's B1
    assert BAND_VALUE["01 - VH.Real"] not in x[:, 0, 0]


def test_a_missing_band_with_no_documented_fill_is_an_error(so2sat):
    with pytest.raises(GeoBenchError, match=r"m-so2sat lacks Sentinel-2 bands \['B10'\]"):
        so2sat.match_bands(S2_BANDS)


def test_bigearthnet_without_b10_serves_our_inputs(tmp_path):
    dataset = GeoBenchDataset.open(bigearthnet_like(tmp_path))
    match = dataset.match_bands(S2_INPUT_BANDS)
    assert not match.filled and "10 - SWIR - Cirrus" not in match.sources


def test_unknown_input_band_is_an_error(eurosat):
    with pytest.raises(GeoBenchError, match=r"encoder input bands \['VV'\]"):
        eurosat.match_bands(("B2", "VV"))


def test_statistics_follow_the_encoder_order_and_fills(so2sat):
    match = so2sat.match_bands(("B9", "B8A", "B1", "B2"))
    # unscaled (the dataset's own input_stats divides So2Sat's by 10 000, as MMEarth does)
    stats = input_stats(match, so2sat.band_stats)
    sources = ["08A - Vegetation Red Edge", "08A - Vegetation Red Edge", "02 - Blue", "02 - Blue"]
    assert stats.mean.tolist() == [BAND_STATS[s][0] for s in sources]
    assert stats.std.tolist() == pytest.approx([BAND_STATS[s][1] for s in sources])
    z = normalise(input_array(so2sat.read_sample("s0000").bands, match), stats)
    assert z.dtype == np.float32
    assert np.allclose(z, 5.0)  # value = 2 × mean = 10 × std in geobench_layout


def test_statistics_must_cover_the_bands_and_be_usable(eurosat):
    match = eurosat.match_bands(("B2", "B3"))
    del eurosat.band_stats["03 - Green"]
    with pytest.raises(GeoBenchError, match=r"no statistics for bands \['03 - Green'\]"):
        eurosat.input_stats(match)
    eurosat.band_stats["03 - Green"] = eurosat.band_stats["02 - Blue"]._replace(std=0.0)
    with pytest.raises(GeoBenchError, match=r"bands \['03 - Green'\] a std"):
        eurosat.input_stats(match)


def _band(name, alt_names=(), sensor="Sentinel2"):
    return BandSpec(name, tuple(alt_names), sensor, 10.0, None)


def test_names_and_alt_names():
    assert our_band_name(_band("08A - Vegetation Red Edge")) == "B8A"
    assert our_band_name(_band("08 - NIR")) == "B8"
    assert our_band_name(_band("Narrow NIR", ("8A",))) == "B8A"
    assert our_band_name(_band("Near infrared", ("nir",))) == "B8"
    assert our_band_name(_band("Red", ("red",))) == "B4"
    assert our_band_name(_band("B12")) == "B12"
    assert our_band_name(_band("Vegetation Red Edge")) is None
    assert our_band_name(_band("08 - NIR", sensor="Sentinel1")) is None
    assert our_band_name(_band("Red", ("red",), sensor="SpectralBand")) is None


def test_contradictory_names_are_an_error():
    with pytest.raises(GeoBenchError, match=r"reads as several Sentinel-2 bands \['B8', 'B8A'\]"):
        our_band_name(_band("08 - NIR", ("8A",)), "m-x")


def test_two_bands_with_one_name_are_an_error():
    with pytest.raises(GeoBenchError, match="both read as B8"):
        match_bands("m-x", [_band("08 - NIR"), _band("NIR", ("8",))], ("B8",))


def test_bands_of_different_size_are_an_error(eurosat):
    match = eurosat.match_bands(("B2", "B3"))
    bands = {"02 - Blue": np.zeros((8, 8)), "03 - Green": np.zeros((4, 4))}
    with pytest.raises(GeoBenchError, match="bands differ in size"):
        input_array(bands, match, "s0000")
