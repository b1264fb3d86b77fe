"""The held-out check: our reader reads what geobench 1.0's own writer produces.

geobench cannot be a dependency (its pins conflict with our stack), so a throwaway venv gets
geobench 1.0.0 ``--no-deps`` plus the few packages its writer needs, writes datasets with
``official_geobench_writer.py``, and this process reads them back with mpmae's reader. Two
venvs: numpy 1.x, as the published GEO-Bench files were pickled, and today's numpy 2.x,
whose pickles name ``numpy._core``.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest

from mpmae.data.geobench.dataset import GeoBenchDataset
from mpmae.data.geobench.task_specs import LabelKind

WRITER = Path(__file__).with_name("official_geobench_writer.py")
WRITER_PACKAGES = ("h5py", "rasterio", "scipy", "tqdm")
NUMPY_PINS = {"numpy1": ("numpy<2", "rasterio<1.4"), "numpy2": ("numpy>=2",)}
KINDS = {"m-official-cls": LabelKind.CLASSIFICATION, "m-official-multi": LabelKind.MULTI_LABEL,
         "m-official-seg": LabelKind.SEGMENTATION}


@pytest.fixture(scope="module", params=sorted(NUMPY_PINS))
def written(request, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp(f"geobench-{request.param}")
    python = _geobench_venv(root / "venv", NUMPY_PINS[request.param])
    out = root / "datasets"
    done = subprocess.run([str(python), str(WRITER), str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def _geobench_venv(folder: Path, pins: tuple[str, ...]) -> Path:
    venv.create(folder, with_pip=True)
    python = folder / "bin" / "python"
    for args in (["--no-deps", "geobench==1.0.0"], [*pins, *WRITER_PACKAGES]):
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", *args],
                              capture_output=True, text=True)
        assert done.returncode == 0, f"pip install {args} failed:\n{done.stderr[-3000:]}"
    return python


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_band_and_label_reads_back_as_written(written, name):
    expected = np.load(written / "expected.npz")
    dataset = GeoBenchDataset.open(written / name)
    assert dataset.label_kind is KINDS[name]
    assert dataset.n_classes == (4 if name == "m-official-multi" else 3)
    samples = [s for split in ("train", "valid", "test") for s in dataset.samples(split=split)]
    assert len(samples) == 6
    for sample_name in samples:
        sample = dataset.read_sample(sample_name)
        assert set(sample.bands) == set(dataset.band_names)
        for band, values in sample.bands.items():
            np.testing.assert_array_equal(values, expected[f"{name}/{sample_name}/{band}"])
        np.testing.assert_array_equal(sample.label, expected[f"{name}/{sample_name}/label"])


def test_partitions_stats_and_bands_by_name(written):
    dataset = GeoBenchDataset.open(written / "m-official-cls")
    # geobench saves the default partition as a link to full_partition.json
    assert (written / "m-official-cls" / "default_partition.json").is_symlink()
    assert dataset.samples("default") == dataset.samples("full")
    assert len(dataset.samples("0.50x_train")) == 2
    match = dataset.match_bands(["B2", "B8", "B8A", "B12"])
    assert match.sources == ("02 - Blue", "08 - NIR", "08A - Vegetation Red Edge",
                             "12 - SWIR")
    assert match.filled == {}
    expected = np.load(written / "expected.npz")
    train = dataset.samples(split="train")
    nir = np.stack([expected[f"m-official-cls/{s}/08 - NIR"] for s in train]).astype(float)
    stats = dataset.input_stats(match)
    assert stats.mean[1] == pytest.approx(nir.mean())
    assert stats.std[1] == pytest.approx(nir.std())


def test_reading_does_not_import_geobench(written):
    code = ("import sys; from mpmae.data.geobench.dataset import GeoBenchDataset as D; "
            f"d = D.open({str(written / 'm-official-seg')!r}); d.read_sample('id_0000'); "
            "assert not any(m.split('.')[0] in ('geobench', 'rasterio', 'affine') "
            "for m in sys.modules), sorted(sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
