"""Our tortilla reader against tacoreader 0.5.6 (the version GEO-Bench-2 pinned) on files
our writer made: the same rows, columns, splits, offsets and item bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tacoreader
from geobench2_fixtures import image, write_benv2

from mpmae.data.geobench2.tortilla import read_bytes, read_children, read_items

COLUMNS = ("tortilla:id", "tortilla:file_format", "tortilla:offset", "tortilla:length",
           "tortilla:data_split")


def _rows(df) -> list[dict]:
    return [{c: row[c] for c in COLUMNS} for _, row in df.iterrows()]


def _ours(items) -> list[dict]:
    return [{"tortilla:id": i.id, "tortilla:file_format": i.file_format,
             "tortilla:offset": i.offset, "tortilla:length": i.length,
             "tortilla:data_split": i.split} for i in items]


def test_same_samples_metadata_and_bytes_as_tacoreader(tmp_path: Path) -> None:
    path = write_benv2(tmp_path / "benv2")
    theirs = tacoreader.load(str(path))
    ours = read_items(path)
    assert _ours(ours) == _rows(theirs)
    assert [i.metadata["labels"] for i in ours] == [list(v) for v in theirs["labels"]]
    assert [i.metadata["lat"] for i in ours] == list(theirs["lat"])
    for index, sample in enumerate(ours):
        their_items = theirs.read(index)  # the nested tortilla, offsets made absolute
        our_items = read_children(sample)
        assert _ours(our_items) == _rows(their_items)
        for our, (_, row) in zip(our_items, their_items.iterrows(), strict=True):
            offset, length, file = their_items.get_internal_path(row)
            with open(file, "rb") as fp:
                fp.seek(offset)
                assert read_bytes(our) == fp.read(length)


def test_geotiff_pixels_round_trip(tmp_path: Path) -> None:
    from mpmae.data.geobench2.geotiff import read_geotiff

    path = write_benv2(tmp_path / "benv2")
    s2 = read_children(read_items(path)[1])[1]
    np.testing.assert_array_equal(read_geotiff(read_bytes(s2), "s2", 12), image(1, 12))
