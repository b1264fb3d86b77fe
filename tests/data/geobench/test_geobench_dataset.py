"""GeoBenchDataset on real GEO-Bench-layout folders written by geobench_layout."""

from __future__ import annotations

import numpy as np
import pytest
from geobench_layout import (
    BAND_VALUE,
    EUROSAT_CLASSES,
    SEGMENTATION_LABEL,
    SPLIT_SIZES,
    bigearthnet_like,
    class_map,
    eurosat_like,
    segmentation_like,
    set_pickle_attribute,
    so2sat_like,
)

from mpmae.data.geobench.dataset import GeoBenchDataset
from mpmae.data.geobench.errors import GeoBenchError
from mpmae.data.geobench.task_specs import LabelKind
from mpmae.data.geobench.writer import (
    SENTINEL2_13,
    Regression,
    TaskSpecifications,
    write_sample,
    write_task_specs,
)


@pytest.fixture
def eurosat(tmp_path):
    return GeoBenchDataset.open(eurosat_like(tmp_path))


def test_eurosat_like_describes_itself(eurosat):
    assert eurosat.name == "m-eurosat"
    assert eurosat.label_kind is LabelKind.CLASSIFICATION
    assert eurosat.n_classes == 10 and eurosat.class_names == EUROSAT_CLASSES
    assert eurosat.band_names == tuple(b.name for b in SENTINEL2_13)
    assert eurosat.bands[8].name == "08A - Vegetation Red Edge"
    assert eurosat.bands[8].alt_names == ("8A", "08A")
    assert eurosat.bands[8].spatial_resolution == 20
    assert eurosat.patch_size == (8, 8)
    assert set(eurosat.partition_names) == {"default", "original", "0.20x_train"}


def test_splits_come_from_the_default_partition(eurosat):
    sizes = {split: len(eurosat.samples("default", split)) for split in SPLIT_SIZES}
    assert sizes == SPLIT_SIZES
    assert eurosat.samples() == eurosat.samples("default", "train")
    assert not set(eurosat.samples(split="train")) & set(eurosat.samples(split="test"))


def test_label_efficiency_partition_shrinks_only_train(eurosat):
    assert eurosat.samples("0.20x_train", "train") == eurosat.samples("default", "train")[:2]
    for split in ("valid", "test"):
        assert eurosat.samples("0.20x_train", split) == eurosat.samples("default", split)


def test_a_sample_reads_as_bands_and_label(eurosat):
    bands, label = eurosat.read_sample(eurosat.samples(split="test")[1])
    assert set(bands) == set(eurosat.band_names)
    assert bands["08 - NIR"].shape == (8, 8)
    assert (bands["08 - NIR"] == BAND_VALUE["08 - NIR"]).all()
    assert (bands["08A - Vegetation Red Edge"] == BAND_VALUE["08A - Vegetation Red Edge"]).all()
    assert label == (SPLIT_SIZES["train"] + SPLIT_SIZES["valid"] + 1) % 10
    assert isinstance(label, int)


def test_multi_label_reads_a_0_1_vector(tmp_path):
    dataset = GeoBenchDataset.open(bigearthnet_like(tmp_path))
    assert dataset.label_kind is LabelKind.MULTI_LABEL and dataset.n_classes == 5
    assert dataset.class_names == tuple(f"class {k}" for k in range(5))
    assert "10 - SWIR - Cirrus" not in dataset.band_names
    _, label = dataset.read_sample("s0003")
    assert label.tolist() == [0, 0, 0, 1, 1]


def test_segmentation_reads_the_label_band(tmp_path):
    dataset = GeoBenchDataset.open(segmentation_like(tmp_path))
    assert dataset.label_kind is LabelKind.SEGMENTATION and dataset.n_classes == 3
    assert dataset.class_names == ("background", "crop", "tree")
    assert "label" not in dataset.band_names
    bands, label = dataset.read_sample("s0002")
    assert "label" not in bands and len(bands) == 13
    assert label.dtype == np.int64 and (label == class_map(2)).all()


def test_missing_task_specs_names_it(tmp_path):
    folder = eurosat_like(tmp_path)
    (folder / "task_specs.pkl").unlink()
    with pytest.raises(GeoBenchError, match=r"m-eurosat/task_specs\.pkl not found"):
        GeoBenchDataset.open(folder)


def test_missing_default_partition_names_it(tmp_path):
    folder = eurosat_like(tmp_path)
    (folder / "original_partition.json").unlink()  # default_partition.json now dangles
    with pytest.raises(GeoBenchError, match=r"default_partition\.json not found"):
        GeoBenchDataset.open(folder)


def test_unknown_partition_names_its_file_and_the_ones_there(eurosat):
    with pytest.raises(GeoBenchError, match=r"0\.01x_train_partition\.json not found.*0\.20x"):
        eurosat.samples("0.01x_train", "train")
    with pytest.raises(GeoBenchError, match="split 'val'"):
        eurosat.samples("default", "val")


def test_malformed_partition_names_it(tmp_path):
    folder = eurosat_like(tmp_path)
    (folder / "0.20x_train_partition.json").write_text('{"train": "s0000"}')
    with pytest.raises(GeoBenchError, match=r"0\.20x_train_partition\.json: 'train' is not"):
        GeoBenchDataset.open(folder)


def test_missing_band_stats_names_it(tmp_path):
    folder = eurosat_like(tmp_path)
    (folder / "band_stats.json").unlink()
    with pytest.raises(GeoBenchError, match=r"band_stats\.json not found"):
        GeoBenchDataset.open(folder)


def test_truncated_hdf5_names_the_file(eurosat):
    path = eurosat.folder / "s0001.hdf5"
    data = path.read_bytes()
    for cut in (len(data) // 2, 100):
        path.write_bytes(data[:cut])
        with pytest.raises(GeoBenchError, match=r"s0001\.hdf5: not a readable GEO-Bench HDF5"):
            eurosat.read_sample("s0001")


def test_missing_sample_file_names_it(eurosat):
    (eurosat.folder / "s0004.hdf5").unlink()
    with pytest.raises(GeoBenchError, match=r"s0004\.hdf5 not found"):
        eurosat.read_sample("s0004")


def test_sample_names_stay_inside_the_folder(eurosat):
    with pytest.raises(GeoBenchError, match="not a file name"):
        eurosat.read_sample("../m-eurosat/s0000")


def test_label_out_of_range_names_the_sample(eurosat):
    bands = {b: np.zeros((8, 8), np.int16) for b in SENTINEL2_13}
    write_sample(eurosat.folder, "s0005", bands, label=10)
    with pytest.raises(GeoBenchError, match=r"sample s0005 .*label 10 is outside the 10"):
        eurosat.read_sample("s0005")


def test_segmentation_label_out_of_range_names_the_sample(tmp_path):
    dataset = GeoBenchDataset.open(segmentation_like(tmp_path))
    bands = {b: np.zeros((8, 8), np.int16) for b in SENTINEL2_13}
    write_sample(dataset.folder, "s0001", bands, (SEGMENTATION_LABEL, class_map(0) + 1))
    with pytest.raises(GeoBenchError, match=r"sample s0001 .*outside the 3 classes"):
        dataset.read_sample("s0001")


def test_multi_label_that_is_not_0_1_names_the_sample(tmp_path):
    dataset = GeoBenchDataset.open(bigearthnet_like(tmp_path))
    bands = {b: np.zeros((8, 8), np.int16) for b in SENTINEL2_13[:2]}
    write_sample(dataset.folder, "s0001", bands, np.array([0, 2, 0, 0, 0]))
    with pytest.raises(GeoBenchError, match=r"sample s0001 .*not a 0/1 vector of 5"):
        dataset.read_sample("s0001")


def test_pickle_attribute_that_is_not_bytes_names_the_file(eurosat):
    set_pickle_attribute(eurosat.folder / "s0000.hdf5", "{'bands_order': []}")
    with pytest.raises(GeoBenchError, match=r"s0000\.hdf5: the 'pickle' attribute is not"):
        eurosat.read_sample("s0000")


def test_unsupported_label_type_is_named(tmp_path):
    folder = eurosat_like(tmp_path)
    write_task_specs(folder, TaskSpecifications("x", SENTINEL2_13, 10.0, (8, 8), Regression()))
    with pytest.raises(GeoBenchError, match=r"label type <stand-in for geobench\.label\.Regr"):
        GeoBenchDataset.open(folder)


def test_a_band_stored_in_another_file_is_refused_and_never_read(tmp_path):
    import h5py
    import numpy as np
    import pytest

    from mpmae.data.geobench.dataset import GeoBenchDataset
    from mpmae.data.geobench.errors import GeoBenchError

    folder = eurosat_like(tmp_path)
    dataset = GeoBenchDataset.open(folder)
    name = dataset.samples("default", "train")[0]
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.full((8, 8), 7, np.int16).tobytes())
    with h5py.File(folder / f"{name}.hdf5", "a") as fp:
        band = dataset.band_names[1]
        del fp[band]
        fp.create_dataset(band, shape=(8, 8), dtype=np.int16,
                          external=[(str(secret), 0, secret.stat().st_size)])
    with pytest.raises(GeoBenchError, match="stored outside the file"):
        dataset.read_sample(name)


def test_so2sat_statistics_are_divided_by_10000_as_the_reference_does(tmp_path):
    so2sat = GeoBenchDataset.open(so2sat_like(tmp_path))
    eurosat = GeoBenchDataset.open(eurosat_like(tmp_path))
    bands = ["B2", "B8A"]
    scaled = so2sat.input_stats(so2sat.match_bands(bands))
    assert so2sat.stats_scale == 1e-4 and eurosat.stats_scale == 1.0
    raw = [so2sat.band_stats[s] for s in so2sat.match_bands(bands).sources]
    np.testing.assert_allclose(scaled.mean, [r.mean * 1e-4 for r in raw], rtol=1e-6)
    np.testing.assert_allclose(scaled.std, [r.std * 1e-4 for r in raw], rtol=1e-6)
    plain = eurosat.input_stats(eurosat.match_bands(bands))
    assert plain.mean[0] == pytest.approx(eurosat.band_stats["02 - Blue"].mean)
