"""Fields of the World's two Sentinel-2 windows read as a dated series, and PASTIS' HDF5
items (its S2 series and semantic mask) read from bytes in memory, each malformed item one
line naming the file."""

from __future__ import annotations

import io

import h5py
import numpy as np
import pytest

from mpmae.data.geobench2.catalog import DATASETS, HDF5
from mpmae.data.geobench2.dataset import GeoBench2Dataset
from mpmae.data.geobench2.errors import GeoBench2Error
from mpmae.data.geobench2.writer import Entry, geotiff_bytes, hdf5_bytes, write_tortilla

TRAIN = {"tortilla:data_split": "train"}


def _fotw_sample(i: int) -> Entry:
    windows = [Entry(f"win_{w}", geotiff_bytes(np.full((4, 8, 8), 100 * t + i, np.uint16)),
                     metadata=TRAIN) for t, w in enumerate("ab")]
    masks = [Entry(k, geotiff_bytes(np.full((1, 8, 8), v, np.uint8)), metadata=TRAIN)
             for k, v in (("instance_mask", 9), ("semantic_3class_mask", i % 3))]
    return Entry(f"f{i}", [*windows, *masks], metadata=TRAIN)


def test_fotw_reads_windows_a_and_b_as_two_dates_and_its_semantic_mask(tmp_path):
    folder = tmp_path / "fotw"
    folder.mkdir()
    [file] = DATASETS["fotw"].files
    write_tortilla(folder / file, [_fotw_sample(i) for i in range(3)])
    data = GeoBench2Dataset.open(folder)
    read = [data.read_sample(s) for s in data.samples("train")]
    assert set(read[0].bands) == {"red", "green", "blue", "nir"}
    assert [r.bands["nir"][:, 0, 0].tolist() for r in read] == [[0, 100], [1, 101], [2, 102]]
    assert [int(r.label[0, 0]) for r in read] == [0, 1, 2]  # item 3, not the instance mask
    assert data.match_bands(["B2", "B3", "B4", "B8"]).sources == ("blue", "green", "red",
                                                                  "nir")


def _pastis_sample(i: int, **replace: bytes) -> Entry:
    s2 = np.arange(2 * 10 * 8 * 8, dtype=np.int16).reshape(2, 10, 8, 8) + i
    s1 = np.zeros((3, 3, 8, 8), np.float16)
    semantic = np.stack([np.full((8, 8), i % 20), np.full((8, 8), 25), np.zeros((8, 8))])
    arrays = {"s2": hdf5_bytes(s2), "s1a": hdf5_bytes(s1), "s1d": hdf5_bytes(s1),
              "semantic": hdf5_bytes(semantic.astype(np.uint8)),
              "instance": hdf5_bytes(np.zeros((8, 8), np.int64))}
    arrays.update(replace)
    return Entry(f"p{i}", [Entry(k, v, HDF5, metadata=TRAIN) for k, v in arrays.items()],
                 metadata=TRAIN)


def _pastis(tmp_path, **replace: bytes) -> tuple[GeoBench2Dataset, list]:
    folder = tmp_path / "pastis"
    folder.mkdir()
    for part, file in enumerate(DATASETS["pastis"].files):
        write_tortilla(folder / file, [_pastis_sample(part, **(replace if part == 1 else {}))])
    data = GeoBench2Dataset.open(folder)
    return data, list(data.samples("train"))


def test_pastis_reads_its_s2_series_from_hdf5_as_dates_of_each_band_and_mask_band_0(tmp_path):
    data, samples = _pastis(tmp_path)
    read = [data.read_sample(s) for s in samples]
    bands = DATASETS["pastis"].modalities[0].bands
    assert list(read[0].bands) == list(bands)  # S2 only: its S1 series are not read
    s2 = np.arange(2 * 10 * 8 * 8).reshape(2, 10, 8, 8)
    for i, sample in enumerate(read):
        assert np.array_equal(np.stack([sample.bands[b] for b in bands], axis=1), s2 + i)
        assert sample.label.shape == (8, 8) and int(sample.label[0, 0]) == i


def _external_link() -> bytes:
    memory = io.BytesIO()
    with h5py.File(memory, "w") as f:
        f["data"] = h5py.ExternalLink("/etc/passwd", "/data")
    return memory.getvalue()


def _named(name: str, array: np.ndarray) -> bytes:
    memory = io.BytesIO()
    with h5py.File(memory, "w") as f:
        f.create_dataset(name, data=array)
    return memory.getvalue()


@pytest.mark.parametrize(("item", "data", "says"), [
    ("s2", b"not hdf5", "not a readable HDF5 file"),
    ("s2", _named("images", np.zeros((2, 10, 8, 8))), "has no dataset 'data'"),
    ("s2", _external_link(), "ExternalLink"),
    ("s2", hdf5_bytes(np.zeros((2, 12, 8, 8), np.int16)), "a series of shape (2, 12, 8, 8)"),
    ("s2", hdf5_bytes(np.zeros((10, 8, 8), np.int16)), "not a numeric array of 4 dimensions"),
    ("s2", hdf5_bytes(np.zeros((2, 10, 4, 4), np.int16)), "at its mask's size (8, 8)"),
    ("semantic", hdf5_bytes(np.zeros((8, 8), np.uint8)), "not a numeric array of 3"),
    ("semantic", hdf5_bytes(np.full((1, 8, 8), 20, np.uint8)), "outside the 20 classes"),
])
def test_a_malformed_pastis_item_is_one_line_naming_the_file(tmp_path, item, data, says):
    data_set, samples = _pastis(tmp_path, **{item: data})
    data_set.read_sample(samples[0])  # the other parts read
    with pytest.raises(GeoBench2Error) as err:
        data_set.read_sample(samples[1])
    message = str(err.value)
    assert says in message and "geobench_pastis.0001.part.tortilla" in message
    assert "\n" not in message
