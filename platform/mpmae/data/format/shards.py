"""Writing and checking Parquet shards.

A shard is built whole in memory and published in one atomic step, so a crash never
leaves a partial file that later reads as valid; a re-run sees a valid shard and skips it.
Every page carries a CRC checksum that every read verifies, so flipped bytes fail the read
of that page instead of decoding into wrong tiles; the manifest records each shard's size
and SHA-256 for ``mpmae data verify``.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.dataset as pds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from mpmae.data.format.manifest import DatasetError, ShardInfo
from mpmae.data.format.schema import schema_problems
from mpmae.storage import Location, StorageError, retrying, storage_error

ROW_GROUP_TILES = 64
# LZ4 (Parquet LZ4_RAW): measured on synth shards, one thread, page checksums verified,
# it decodes at ~0.55× the CPU of zstd level 3 for ~1.25× the bytes; the stream is bound
# by CPU, not bytes (docs/tile-format.md).
COMPRESSION = "lz4"
COMPRESSION_LEVEL = None
STATISTICS_COLUMNS = ("tile_id", "split")
# Short repeated strings; a tile's bytes never repeat, and trying a dictionary on them
# costs a pass at write time.
DICTIONARY_COLUMNS = ("s2_type", "split")


def parquet_options(compression: str = COMPRESSION,
                    level: int | None = COMPRESSION_LEVEL) -> dict:
    """``pq.write_table`` options of a shard (the codec and level are measured choices:
    ``benchmarks/bench_format.py``)."""
    return {"row_group_size": ROW_GROUP_TILES, "compression": compression,
            "compression_level": level, "use_dictionary": list(DICTIONARY_COLUMNS),
            "write_statistics": list(STATISTICS_COLUMNS), "write_page_checksum": True}


def shard_name(split: str, index: int, key: str) -> str:
    """``key``: :func:`~mpmae.data.format.publish.options_key` of the writer's options, so
    a run with other options never overwrites a shard the existing dataset.json lists."""
    return f"{split}/part-{index:05d}-{key}.parquet"


def write_shard(root: Location, name: str, table: pa.Table) -> ShardInfo:
    """Write ``table`` to ``root/name`` atomically and return its manifest entry."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **parquet_options())
    data = sink.getvalue().to_pybytes()
    root.join(*name.split("/")).write_bytes_atomic(data)
    return shard_info(name, data)


def shard_info(name: str, data: bytes) -> ShardInfo:
    """The manifest entry of the shard ``name`` whose bytes are ``data``: its tiles, size,
    SHA-256 and the tiles of each row group (read back from its footer, not assumed)."""
    footer = parse_shard(data).metadata
    return ShardInfo(path=name, tiles=footer.num_rows, bytes=len(data), sha256=digest(data),
                     row_groups=row_group_tiles(footer))


def row_group_tiles(footer: pq.FileMetaData) -> list[int]:
    """The tiles of each of a shard's row groups, in order."""
    return [footer.row_group(i).num_rows for i in range(footer.num_row_groups)]


def digest(data: bytes) -> str:
    """The SHA-256 of a shard's bytes, as dataset.json records it."""
    return hashlib.sha256(data).hexdigest()


def parse_shard(data: bytes) -> pq.ParquetFile:
    """A shard held in memory, read with page checksums verified."""
    return pq.ParquetFile(pa.BufferReader(data), page_checksum_verification=True)


def decode_problem(data: bytes) -> str | None:
    """Why a shard's bytes do not decode (footer, or any page: checksums verified), or None."""
    try:
        shard = parse_shard(data)
        for i in range(shard.num_row_groups):
            shard.read_row_group(i)
    except (pa.ArrowException, OSError) as e:
        return str(e)
    return None


def open_shard(root: Location, name: str) -> pq.ParquetFile:
    """Open a shard (its footer read), naming the file and the remedy when it is
    unreadable."""
    loc = root.join(*name.split("/"))
    try:
        return retrying(loc, lambda: pq.ParquetFile(loc.fs.open_input_file(loc.path),
                                                    page_checksum_verification=True))
    except FileNotFoundError:
        raise missing(root, name) from None
    except (pa.ArrowInvalid, OSError) as e:
        if isinstance(e, OSError) and not isinstance(e, pa.ArrowException) and not loc.exists():
            raise StorageError(f"cannot read {loc.uri}") from None
        raise DatasetError(
            f"shard {loc.uri} is corrupt or truncated ({e}): delete it and re-run the "
            "conversion (it rewrites missing shards), or re-create the dataset"
        ) from None


class SchemaCheck:
    """:func:`~mpmae.data.format.schema.schema_problems` of footers against ``expected``,
    each distinct footer schema converted and compared once: converting one costs ~2 ms of
    CPU under the GIL, the most of start-up's CPU at thousands of shards, and shards
    written alike share one schema."""

    def __init__(self, expected: pa.Schema) -> None:
        self.expected = expected
        self._problems: dict[tuple, list[str]] = {}

    def __call__(self, footer: pq.FileMetaData) -> list[str]:
        # A footer's Arrow schema follows from its Parquet schema and the Arrow schema
        # stored beside it; two threads may both convert a new one, with one answer.
        key = ((footer.metadata or {}).get(b"ARROW:schema"), str(footer.schema))
        if key not in self._problems:
            self._problems[key] = schema_problems(footer.schema.to_arrow_schema(),
                                                  self.expected)
        return list(self._problems[key])


def footer_problems(info: ShardInfo, footer: pq.FileMetaData,
                    expected: pa.Schema | SchemaCheck, size: int | None = None) -> list[str]:
    """How a shard's footer (and, if given, its ``size`` in bytes) differs from its
    manifest entry: schema, tile count, row groups (where recorded), size."""
    check = expected if isinstance(expected, SchemaCheck) else SchemaCheck(expected)
    problems = check(footer)
    if footer.num_rows != info.tiles:
        problems.append(f"{footer.num_rows} tiles, dataset.json says {info.tiles}")
    problems += row_group_problems(footer, info.row_groups)
    if size is not None and info.bytes and size != info.bytes:
        problems.append(f"{size} bytes, dataset.json says {info.bytes}")
    return problems


def row_group_problems(footer: pq.FileMetaData, expected: Sequence[int]) -> list[str]:
    """How a footer's row groups differ from ``expected`` (dataset.json's; none recorded:
    nothing to compare)."""
    found = row_group_tiles(footer)
    if not expected or found == list(expected):
        return []
    return [f"row groups of {_groups_text(found)} tiles, dataset.json says "
            f"{_groups_text(expected)}"]


def _groups_text(groups: Sequence[int]) -> str:
    """``[64, 64, 16]``, or for many row groups ``[64, 64, …, 16] (250)``: one short line."""
    if len(groups) <= 6:
        return str(list(groups))
    return f"[{groups[0]}, {groups[1]}, …, {groups[-1]}] ({len(groups)})"


def check_shard(root: Location, info: ShardInfo, footer: pq.FileMetaData,
                expected: pa.Schema | SchemaCheck, size: int | None = None) -> None:
    """Footer-level check (``footer`` as :func:`open_shard` read it): expected schema,
    tile count, row groups (and ``size``, if given) as in the manifest."""
    problems = footer_problems(info, footer, expected, size)
    if problems:
        raise mismatch(root, info.path, problems)


def mismatch(root: Location, name: str, problems: list[str]) -> DatasetError:
    """The one-line error for a shard that differs from its manifest entry."""
    return DatasetError(
        f"shard {root.join(*name.split('/')).uri} does not match dataset.json: "
        + "; ".join(problems)
        + ". Run `mpmae data verify` to check every shard; re-create the dataset or fix "
        "the shard."
    )


def check_present(root: Location, shards: list[ShardInfo]) -> None:
    """Every one of ``shards`` is in the store, of the size dataset.json says (where it
    says one), from one listing of each folder that holds them: no shard is opened (on
    S3 a LIST returns 1,000 objects; reading a footer costs a request a shard). A
    missing shard or one of another size is named."""
    folders: dict[str, list[ShardInfo]] = {}
    for info in shards:
        folders.setdefault(posixpath.dirname(info.path), []).append(info)
    for folder, infos in folders.items():
        sizes = listed_sizes(root, folder)
        for info in infos:
            size = sizes.get(posixpath.basename(info.path))
            if size is None:
                raise missing(root, info.path)
            if info.bytes and size != info.bytes:
                raise mismatch(root, info.path, [f"{size} bytes, dataset.json says {info.bytes}"])


def listed_sizes(root: Location, folder: str) -> dict[str, int]:
    """File name → size of the files in ``folder`` ('/'-separated, under ``root``; '': root
    itself), from one listing (paged on S3); none if the folder does not exist."""
    loc = root.join(*folder.split("/")) if folder else root
    selector = pafs.FileSelector(loc.path, allow_not_found=True)
    try:
        infos = retrying(loc, lambda: loc.fs.get_file_info(selector))
    except OSError as e:
        raise storage_error(loc, e) from None
    return {i.base_name: i.size for i in infos if i.type == pafs.FileType.File}


def missing(root: Location, name: str) -> DatasetError:
    """The error for a shard dataset.json lists that the store does not hold."""
    return DatasetError(f"shard {root.join(*name.split('/')).uri} is listed in dataset.json "
                        "but missing: restore it or re-create the dataset")


def read_footer(root: Location, info: ShardInfo,
                expected: pa.Schema | SchemaCheck) -> pq.FileMetaData:
    """A shard's footer, checked against its manifest entry (:func:`check_shard`).

    One request where the manifest records the shard's size: opening a file by its path
    asks the store for the size first (a HEAD on S3), half of start-up's round trips at
    thousands of shards. A shard that does not read at that size is opened the usual way,
    which names it missing, corrupt or of another size than dataset.json says (a local
    file is read at its real size; ``mpmae data verify`` checks every size and hash).
    """
    loc = root.join(*info.path.split("/"))
    footer = _footer_at_size(loc, info.bytes) if info.bytes else None
    if footer is not None:
        check_shard(root, info, footer, expected)
        return footer
    footer = open_shard(root, info.path).metadata
    check_shard(root, info, footer, expected, loc.size())
    return footer


def _footer_at_size(loc: Location, size: int) -> pq.FileMetaData | None:
    """The footer of the file at ``loc`` if it reads as a Parquet file of ``size`` bytes.
    A throttle or server error is tried again (and counted) like any read of ours; one
    that stays raises a StorageError, never a fallback that hides it."""
    # pyarrow.fs opens a file by path only; a dataset fragment passes its size on.
    fragment = pds.ParquetFileFormat().make_fragment(loc.path, loc.fs, file_size=size)
    try:
        retrying(loc, fragment.ensure_complete_metadata)
    except (pa.ArrowException, OSError):
        return None
    return fragment.metadata


def corrupt_data(root: Location, name: str, error: Exception, where: str = "") -> DatasetError:
    """The error for a shard whose pages do not decode (``where``: e.g. its row group)."""
    return DatasetError(
        f"shard {root.join(*name.split('/')).uri} has corrupt data{where} ({error}): delete "
        "it and re-run the conversion, or re-create the dataset")
