"""Our reader of tortilla files, the container GEO-Bench-2 ships its datasets in.

The layout, as tacoreader 0.5.6 reads it (``loader_dataframe.load_file``,
``TortillaDataFrame.partial_load_file``) and its ``compile`` writes it:

    bytes 0..2     magic ``#y`` (a TACO file, ``WX``, is a tortilla with a collection JSON)
    bytes 2..10    footer offset, uint64 little-endian, from the tortilla's first byte
    bytes 10..18   footer length, uint64 little-endian
    bytes 18..26   data partitions (1); the rest of the 200-byte header is zeros
    200..          the items' bytes, back to back
    footer         a Parquet table, one row per item: ``tortilla:id``,
                   ``tortilla:file_format``, ``tortilla:offset`` and ``tortilla:length``
                   (relative to the tortilla's first byte), ``tortilla:data_split`` at the
                   top level, then the dataset's own columns (labels, lat, lon, dates, …)

An item whose format is ``TORTILLA`` is a tortilla itself (a sample of several images:
modalities or dates), laid out the same way with offsets relative to its own first byte.

Everything here is untrusted: each offset and length is checked against the bytes it must
lie in, and a failure is one line naming the file. Nothing is unpickled or executed
(Parquet is data; we never call ``to_pandas``, whose schema metadata names pandas types).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from mpmae.data.geobench2.errors import GeoBench2Error

HEADER_SIZE = 200
MAGICS = (b"#y", b"WX")
NESTED = "TORTILLA"
ID, FORMAT, OFFSET, LENGTH, SPLIT = (
    "tortilla:id", "tortilla:file_format", "tortilla:offset", "tortilla:length",
    "tortilla:data_split")
REQUIRED = (ID, FORMAT, OFFSET, LENGTH)
# GEO-Bench-2 nests one level (a sample's images); a deeper chain is refused rather than
# followed, so a hostile file cannot recurse without bound.
MAX_DEPTH = 4


@dataclass(frozen=True)
class Item:
    """One row of a tortilla's footer: where its bytes lie in ``path`` (absolute offset)."""

    path: Path
    id: str
    file_format: str
    offset: int
    length: int
    metadata: dict[str, Any]
    depth: int = 0

    @property
    def split(self) -> str | None:
        value = self.metadata.get(SPLIT)
        return value if isinstance(value, str) else None

    @property
    def is_nested(self) -> bool:
        return self.file_format == NESTED


def read_items(path: Path) -> list[Item]:
    """The top-level items of the tortilla file ``path``, in footer order."""
    if not path.is_file():
        raise GeoBench2Error(f"{path} not found: download the GEO-Bench-2 dataset's tortilla "
                             "files into this folder")
    size = path.stat().st_size
    with path.open("rb") as fp:
        return _read_index(fp, path, start=0, extent=size, depth=0)


def read_children(item: Item) -> list[Item]:
    """The items of a nested tortilla (a sample's images), offsets made absolute."""
    if not item.is_nested:
        raise GeoBench2Error(f"{item.path}: item {item.id!r} is a {item.file_format}, not a "
                             "nested tortilla")
    if item.depth + 1 >= MAX_DEPTH:
        raise GeoBench2Error(f"{item.path}: item {item.id!r} nests tortillas more than "
                             f"{MAX_DEPTH} deep; the file is damaged or hostile, download it "
                             "again")
    with item.path.open("rb") as fp:
        return _read_index(fp, item.path, item.offset, item.length, item.depth + 1)


def read_bytes(item: Item) -> bytes:
    """An item's bytes (a GeoTIFF, an HDF5 file, …), exactly ``item.length`` of them."""
    with item.path.open("rb") as fp:
        fp.seek(item.offset)
        data = fp.read(item.length)
    if len(data) != item.length:
        raise GeoBench2Error(f"{item.path}: item {item.id!r} ends past the end of the file "
                             "(truncated?); download it again")
    return data


def _read_index(fp: BinaryIO, path: Path, start: int, extent: int, depth: int) -> list[Item]:
    """The footer of the tortilla occupying ``extent`` bytes from ``start`` in ``fp``."""
    where = f"{path}" if depth == 0 else f"{path} (nested tortilla at byte {start})"
    fp.seek(start)
    header = fp.read(HEADER_SIZE)
    if len(header) < HEADER_SIZE or extent < HEADER_SIZE:
        raise GeoBench2Error(f"{where}: shorter than a tortilla header ({HEADER_SIZE} bytes); "
                             "the file is truncated, download it again")
    if header[:2] not in MAGICS:
        raise GeoBench2Error(f"{where}: not a tortilla file (magic {header[:2]!r}, expected "
                             "b'#y'); download it again")
    footer_offset = int.from_bytes(header[2:10], "little")
    footer_length = int.from_bytes(header[10:18], "little")
    if footer_offset < HEADER_SIZE or footer_length == 0 or \
            footer_offset + footer_length > extent:
        raise GeoBench2Error(f"{where}: its footer (bytes {footer_offset}+{footer_length}) lies "
                             f"outside its {extent} bytes; the file is truncated or damaged, "
                             "download it again")
    fp.seek(start + footer_offset)
    table = _parse_footer(fp.read(footer_length), where)
    return [_item(path, row, start, footer_offset, where, depth) for row in table.to_pylist()]


def _parse_footer(data: bytes, where: str) -> pa.Table:
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise GeoBench2Error(f"{where}: its footer is not a readable Parquet table ({reason}); "
                             "download the file again") from None
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise GeoBench2Error(f"{where}: its footer lacks the columns {missing}; it is not a "
                             "tortilla GEO-Bench-2 wrote, download it again")
    return table


def _item(path: Path, row: dict[str, Any], start: int, data_end: int, where: str,
          depth: int) -> Item:
    item_id, file_format = row[ID], row[FORMAT]
    offset, length = row[OFFSET], row[LENGTH]
    if not isinstance(item_id, str) or not isinstance(file_format, str):
        raise GeoBench2Error(f"{where}: an item has id {item_id!r} and format "
                             f"{file_format!r}, not strings; download the file again")
    if not _is_int(offset) or not _is_int(length) or not (
            offset >= HEADER_SIZE and length >= 0 and offset + length <= data_end):
        raise GeoBench2Error(f"{where}: item {item_id!r} points at bytes {offset}+{length}, "
                             f"outside its data (bytes {HEADER_SIZE}..{data_end}); the file is "
                             "damaged or hostile, download it again")
    metadata = {k: v for k, v in row.items() if k not in REQUIRED}
    return Item(path, item_id, file_format, start + offset, length, metadata, depth)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
