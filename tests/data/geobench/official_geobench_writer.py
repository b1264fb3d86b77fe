"""Write small GEO-Bench datasets with geobench 1.0's own writer (run in a venv that has it).

    python official_geobench_writer.py OUT_DIR

Writes ``OUT_DIR/m-official-cls`` (single-label, with rasterio transforms and CRSs),
``m-official-multi`` (multi-label) and ``m-official-seg`` (segmentation), each with
``task_specs.pkl``, ``band_stats.json`` (geobench's ``compute_dataset_statistics``), a
``full_partition.json`` saved as the default (geobench makes that a symlink) and a
``0.50x_train`` partition, plus ``OUT_DIR/expected.npz`` holding every band and label
written, keyed ``<dataset>/<sample>/<band name>`` and ``<dataset>/<sample>/label``.
This file imports geobench, so the mpmae test environment never imports it.
"""

import datetime
import json
import sys
from pathlib import Path

import numpy as np
import rasterio.crs
import rasterio.transform
from geobench import dataset as gbd
from geobench import label as gbl
from geobench import task as gbt

SIZE = 16
N_SAMPLES = 6
BANDS = [b for b in gbd.sentinel2_13_bands if b.name != "10 - SWIR - Cirrus"]


def main(out: Path) -> None:
    rng = np.random.default_rng(0)
    expected: dict[str, np.ndarray] = {}
    for name, label_type in (
        ("m-official-cls", gbl.Classification(3, ["a", "b", "c"])),
        ("m-official-multi", gbl.MultiLabelClassification(4, ["w", "x", "y", "z"])),
        ("m-official-seg", gbd.SegmentationClasses("label", 10.0, 3, ["p", "q", "r"])),
    ):
        write_dataset(out / name, label_type, rng, expected)
    np.savez(out / "expected.npz", **expected)


def write_dataset(folder: Path, label_type, rng, expected: dict) -> None:
    folder.mkdir(parents=True)
    names = [f"id_{i:04d}" for i in range(N_SAMPLES)]
    for sample_name in names:
        sample = make_sample(sample_name, label_type, rng)
        for band in sample.bands:
            expected[f"{folder.name}/{sample_name}/{band.band_info.name}"] = band.data
        label = sample.label.data if isinstance(sample.label, gbd.Band) else sample.label
        expected[f"{folder.name}/{sample_name}/label"] = np.asarray(label)
        gbd.write_sample_hdf5(sample, str(folder))
    gbt.TaskSpecifications(
        dataset_name=folder.name, benchmark_name="official", patch_size=(SIZE, SIZE),
        n_time_steps=1, bands_info=BANDS, label_type=label_type, spatial_resolution=10.0,
    ).save(str(folder))
    gbd.Partition({"train": names[:4], "valid": names[4:5], "test": names[5:]}).save(
        str(folder), "full", as_default=True)
    gbd.Partition({"train": names[:2], "valid": names[4:5], "test": names[5:]}).save(
        str(folder), "0.50x_train")
    _, stats = gbd.compute_dataset_statistics(gbd.GeobenchDataset(folder, split="train"),
                                              n_value_per_image=None)
    (folder / "band_stats.json").write_text(json.dumps(
        {band: s.to_dict() for band, s in stats.items()}, indent=2))


def make_sample(sample_name: str, label_type, rng) -> gbd.Sample:
    transform = rasterio.transform.from_bounds(500000, 4000000, 500160, 4000160, SIZE, SIZE)
    crs = rasterio.crs.CRS.from_epsg(32633)
    date = datetime.date(2020, 6, 1)
    bands = [
        gbd.Band(rng.integers(0, 10000, (SIZE, SIZE)).astype(np.int16), info, 10.0,
                 date=None, transform=transform, crs=crs, meta_info={"date": date})
        for info in BANDS
    ]
    if isinstance(label_type, gbd.SegmentationClasses):
        label = gbd.Band(rng.integers(0, 3, (SIZE, SIZE)).astype(np.uint8), label_type, 10.0,
                         transform=transform, crs=crs)
    elif isinstance(label_type, gbl.MultiLabelClassification):
        label = rng.integers(0, 2, 4).astype(np.int64)
    else:
        label = int(rng.integers(0, 3))
    return gbd.Sample(bands, label=label, sample_name=sample_name)


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())  # geobench links the default partition by this path
