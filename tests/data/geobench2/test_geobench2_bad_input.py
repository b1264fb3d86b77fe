"""Untrusted GEO-Bench-2 files: each failure is one line naming the file."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from geobench2_fixtures import image, sample, write_benv2

from mpmae.data.geobench2.dataset import GeoBench2Dataset
from mpmae.data.geobench2.errors import GeoBench2Error
from mpmae.data.geobench2.tortilla import read_children, read_items
from mpmae.data.geobench2.writer import Entry, geotiff_bytes, tortilla_bytes, write_tortilla


def _fails(match: str, call, *args) -> str:
    with pytest.raises(GeoBench2Error, match=match) as info:
        call(*args)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_bad_magic(tmp_path: Path) -> None:
    path = write_benv2(tmp_path / "benv2")
    path.write_bytes(b"PK" + path.read_bytes()[2:])
    assert str(path) in _fails("not a tortilla file", read_items, path)


def test_truncated_file(tmp_path: Path) -> None:
    path = write_benv2(tmp_path / "benv2")
    path.write_bytes(path.read_bytes()[:-10])
    assert str(path) in _fails("footer .* lies outside", read_items, path)
    path.write_bytes(b"#y")
    _fails("shorter than a tortilla header", read_items, path)


def _raw_tortilla(offset: int, length: int, data: bytes = b"x" * 64) -> bytes:
    """A tortilla whose one item claims bytes ``offset``+``length``."""
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist([{
        "tortilla:id": "s2", "tortilla:file_format": "GTiff", "tortilla:offset": offset,
        "tortilla:length": length}]), sink)
    footer = sink.getvalue().to_pybytes()
    header = b"#y" + (200 + len(data)).to_bytes(8, "little") + len(footer).to_bytes(8, "little")
    return header.ljust(200, b"\0") + data + footer


def test_item_pointing_outside_its_file(tmp_path: Path) -> None:
    path = tmp_path / "t.tortilla"
    path.write_bytes(_raw_tortilla(200, 64))
    assert read_items(path)[0].length == 64  # the honest file reads
    for offset, length in ((200, 10_000), (10, 64), (200, -1)):
        path.write_bytes(_raw_tortilla(offset, length))
        assert str(path) in _fails("points at bytes .* outside its data", read_items, path)


def test_nested_item_outside_its_sample(tmp_path: Path) -> None:
    inner = _raw_tortilla(200, 64 + 32)
    path = tmp_path / "t.tortilla"
    path.write_bytes(tortilla_bytes([Entry("sample_0", inner, file_format="TORTILLA",
                                           metadata={"tortilla:data_split": "train"})]))
    _fails("nested tortilla at byte 200", read_children, read_items(path)[0])


def test_geotiff_with_the_wrong_band_count(tmp_path: Path) -> None:
    folder = tmp_path / "benv2"
    folder.mkdir()
    write_tortilla(folder / "geobench_benv2.tortilla",
                   [sample(0, "train", ["Marine waters"], 10)])
    dataset = GeoBench2Dataset.open(folder)
    message = _fails("a GeoTIFF of 10 bands where the benchmark has 12",
                     dataset.read_sample, dataset.samples("train")[0])
    assert "geobench_benv2.tortilla sample 'sample_0'" in message


def test_not_a_geotiff(tmp_path: Path) -> None:
    folder = tmp_path / "benv2"
    folder.mkdir()
    s1 = Entry("s1", geotiff_bytes(image(0, 2, "float32")))
    s2 = Entry("s2", b"not a tiff at all")
    write_tortilla(folder / "geobench_benv2.tortilla", [Entry(
        "sample_0", [s1, s2], metadata={"tortilla:data_split": "train", "labels": []})])
    dataset = GeoBench2Dataset.open(folder)
    _fails("not a readable GeoTIFF", dataset.read_sample, dataset.samples("train")[0])


def test_split_with_no_samples(tmp_path: Path) -> None:
    folder = tmp_path / "benv2"
    folder.mkdir()
    write_tortilla(folder / "geobench_benv2.tortilla",
                   [sample(0, "train", ["Marine waters"], 12)])
    dataset = GeoBench2Dataset.open(folder)
    assert "geobench_benv2.tortilla" in _fails("hold no test samples", dataset.samples, "test")


def test_missing_files_and_unknown_dataset(tmp_path: Path) -> None:
    (tmp_path / "benv2").mkdir()
    _fails(r"files \['geobench_benv2.tortilla'\] are not here", GeoBench2Dataset.open,
           tmp_path / "benv2")
    _fails("is not a GEO-Bench-2 dataset", GeoBench2Dataset.open, tmp_path / "benv2", "m-eurosat")
