"""Decode CPU of the tile format, in core-ms per tile, one thread; prints JSON.

On ``mpmae data synth`` output (every modality), in one run:

  ours:     our shards, read with plain pyarrow into numpy (field metadata → shape/dtype,
            as the README shows a user without mpmae)
  plain:    the same bytes laid out by this script with pyarrow alone: one plain
            ``fixed_size_binary`` column per array, zstd at pyarrow's default level, no
            dictionary, no page checksums, the same row groups
  v1:       the same tiles in format v1 (``fixed_shape_tensor`` list columns)
  codecs:   our layout written with other codecs/levels: file size vs decode CPU, the
            evidence behind ``shards.COMPRESSION`` / ``COMPRESSION_LEVEL``

Target: ours ≤ 1.5 × plain (the median of the ratios within each repeat). Every figure is
the median of ``--repeats`` reads (CPU time of this process: ``time.process_time``), the
arms taking turns; pyarrow runs on one CPU and one I/O thread.

    python benchmarks/bench_format.py --tiles 512
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from machine import machine

from mpmae.data.format import shards
from mpmae.data.format.tile_array import DTYPE_KEY, SHAPE_KEY, column_ndarray
from mpmae.data.sources.synth import synthesize

CODECS = [("none", None), ("lz4", None), ("snappy", None), ("zstd", 1), ("zstd", 3),
          ("zstd", 6), ("zstd", 9)]
# How mpmae wrote format v1 shards.
V1_OPTIONS = {"compression": "zstd", "compression_level": 3, "write_page_checksum": True,
              "write_statistics": ["tile_id", "split"]}


def plain_numpy(table: pa.Table) -> dict[str, np.ndarray]:
    """Every column as numpy the way a pyarrow-only user does it: array columns from their
    bytes, reshaped by the field metadata; others by ``to_numpy``."""
    out = {}
    for f, col in zip(table.schema, table.columns, strict=True):
        col = col.combine_chunks()
        if f.metadata and SHAPE_KEY.encode() in f.metadata:
            shape = json.loads(f.metadata[SHAPE_KEY.encode()])
            storage = col.storage if isinstance(col, pa.ExtensionArray) else col
            out[f.name] = np.frombuffer(storage.buffers()[1], f.metadata[DTYPE_KEY.encode()]
                                        ).reshape(-1, *shape)
        elif isinstance(col.type, pa.FixedShapeTensorType):
            out[f.name] = col.to_numpy_ndarray()
        elif pa.types.is_fixed_size_binary(col.type):
            out[f.name] = np.frombuffer(col.buffers()[1], np.uint8).reshape(len(col), -1)
        else:
            out[f.name] = col.to_numpy(zero_copy_only=False)
    return out


def read_cpu_ms(paths: list[Path]) -> float:
    """CPU ms of reading ``paths`` whole into numpy, one row group at a time."""
    start = time.process_time()
    for path in paths:
        shard = pq.ParquetFile(path, page_checksum_verification=True)
        for i in range(shard.num_row_groups):
            plain_numpy(shard.read_row_group(i, use_threads=False))
    return (time.process_time() - start) * 1e3


def as_plain(table: pa.Table) -> pa.Table:
    """The same bytes as plain ``fixed_size_binary`` columns (no extension, no metadata)."""
    columns = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        if isinstance(col.type, pa.ExtensionType):
            col = pa.chunked_array([c.storage for c in col.chunks])
        columns[name] = col
    return pa.table(columns)


def as_v1(table: pa.Table) -> pa.Table:
    """The same tiles as format v1 columns (``fixed_shape_tensor``)."""
    columns = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        if isinstance(col.type, pa.ExtensionType):
            col = pa.FixedShapeTensorArray.from_numpy_ndarray(
                np.ascontiguousarray(column_ndarray(col)))
        columns[name] = col
    return pa.table(columns)


def write_copies(tables: list[pa.Table], folder: Path, name: str, **options) -> list[Path]:
    options = {"row_group_size": shards.ROW_GROUP_TILES, **options}
    paths = []
    for i, table in enumerate(tables):
        path = folder / f"{name}-{i}.parquet"
        pq.write_table(table, path, **options)
        paths.append(path)
    return paths


def measure(arms: dict[str, list[Path]], tiles: int, repeats: int) -> dict[str, dict]:
    """Each arm's core-ms per tile (median of ``repeats``) and size; the arms take turns,
    so a slow spell of the machine hits them all."""
    runs: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(repeats):
        for name, paths in arms.items():
            runs[name].append(read_cpu_ms(paths) / tiles)
    return {name: {"core_ms_per_tile": round(statistics.median(r), 3),
                   "runs": [round(x, 3) for x in r],
                   "mb": round(sum(p.stat().st_size for p in arms[name]) / 2**20, 2)}
            for name, r in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiles", type=int, default=512)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-codecs", action="store_true", help="skip the codec sweep")
    args = parser.parse_args()
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = synthesize(str(root / "world"), tiles=args.tiles, size=args.size, seed=0,
                              downstream_tiles=0, progress=lambda _: None)
        tables = [pq.read_table(root / "world" / s.path)
                  for split in manifest.splits.values() for s in split]
        arms = {
            "ours": [root / "world" / s.path for split in manifest.splits.values() for s in split],
            "plain": write_copies([as_plain(t) for t in tables], root, "plain",
                                  compression="zstd", use_dictionary=False),
            "v1": write_copies([as_v1(t) for t in tables], root, "v1", **V1_OPTIONS),
        }
        codecs = {} if args.no_codecs else {
            f"{codec} {level or ''}".strip(): write_copies(
                tables, root, f"{codec}{level}", **shards.parquet_options(codec, level))
            for codec, level in CODECS}
        figures = measure({**arms, **{f"codec {k}": v for k, v in codecs.items()}},
                          manifest.num_tiles, args.repeats)
        result = {"machine": machine(), "tiles": manifest.num_tiles, "tile_size": args.size,
                  "row_group_tiles": shards.ROW_GROUP_TILES,
                  "ours_codec": f"{shards.COMPRESSION} {shards.COMPRESSION_LEVEL or ''}".strip(),
                  **{name: figures[name] for name in arms},
                  "ours_over_plain": _ratio(figures, "ours", "plain"),
                  "target_ours_over_plain": 1.5,
                  "v1_over_ours": _ratio(figures, "v1", "ours"),
                  "codecs": {k: figures[f"codec {k}"] for k in codecs}}
        print(json.dumps(result, indent=1))


def _ratio(figures: dict, num: str, den: str) -> float:
    """Median over repeats of the ratio within each repeat (the machine's speed swings
    between repeats more than between arms of one)."""
    pairs = zip(figures[num]["runs"], figures[den]["runs"], strict=True)
    return round(statistics.median(a / b for a, b in pairs), 2)


if __name__ == "__main__":
    main()
