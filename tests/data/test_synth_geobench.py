"""The synthetic world's labelled set as GEO-Bench datasets, read back by our reader."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from mpmae.data.geobench.dataset import GeoBenchDataset
from mpmae.data.geobench.task_specs import LabelKind
from mpmae.data.sources.synth import DOWNSTREAM_DIR, synthesize
from mpmae.data.sources.synth_geobench import CLASSIFICATION, GEOBENCH_DIR, SEGMENTATION
from mpmae.modalities import S2_BANDS, S2_INPUT_BANDS


def test_synth_writes_a_classification_and_a_segmentation_set(tmp_path):
    synthesize(str(tmp_path), tiles=64, size=16, downstream_tiles=40, progress=lambda _: None)
    landscape = GeoBenchDataset.open(tmp_path / GEOBENCH_DIR / CLASSIFICATION)
    landcover = GeoBenchDataset.open(tmp_path / GEOBENCH_DIR / SEGMENTATION)
    assert landscape.label_kind is LabelKind.CLASSIFICATION and landscape.n_classes == 9
    assert landcover.label_kind is LabelKind.SEGMENTATION
    train = landscape.samples("default", "train")
    assert 0 < len(landscape.samples("0.10x_train", "train")) < len(train)
    assert set(landscape.samples("0.10x_train", "train")) <= set(train)
    assert len(train) + len(landscape.samples("default", "valid")) + len(
        landscape.samples("default", "test")) == 40
    sample = landscape.read_sample(train[0])
    assert len(sample.bands) == 13 and 0 <= sample.label < 9
    seg = landcover.read_sample(train[0])
    assert seg.label.shape == (16, 16) and seg.label.max() < landcover.n_classes


def test_its_bands_are_the_downstream_tiles_matched_by_name(tmp_path):
    synthesize(str(tmp_path), tiles=32, size=16, downstream_tiles=32, progress=lambda _: None)
    dataset = GeoBenchDataset.open(tmp_path / GEOBENCH_DIR / CLASSIFICATION)
    table = pq.read_table(sorted((tmp_path / DOWNSTREAM_DIR / "train").glob("*.parquet"))[0],
                          columns=["tile_id", "sentinel2", "label"])
    tile_id = table.column("tile_id")[0].as_py()
    tile = table.column("sentinel2").combine_chunks().to_numpy_ndarray()[0]
    match = dataset.match_bands(S2_INPUT_BANDS)
    sample = dataset.read_sample(tile_id)
    for band, source in zip(match.input_bands, match.sources, strict=True):
        assert np.array_equal(sample.bands[source], tile[S2_BANDS.index(band)]), band
    assert sample.label == table.column("label")[0].as_py()
