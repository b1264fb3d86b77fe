"""Writing small tortilla files in the layout tacoreader 0.5.6 reads (see ``tortilla.py``):
the tests' fixtures and the synthetic world's, never the benchmark's own data."""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mpmae.data.geobench2.geotiff import _rasterio
from mpmae.data.geobench2.tortilla import FORMAT, HEADER_SIZE, ID, LENGTH, NESTED, OFFSET


@dataclass(frozen=True)
class Entry:
    """One item to write: its bytes, or the entries of a nested tortilla (a sample)."""

    id: str
    data: bytes | Sequence[Entry]
    file_format: str = "GTiff"
    metadata: Mapping[str, Any] = field(default_factory=dict)


def write_tortilla(path: Path, entries: Sequence[Entry]) -> Path:
    """Write ``entries`` as the tortilla file ``path``."""
    path.write_bytes(tortilla_bytes(entries))
    return path


def tortilla_bytes(entries: Sequence[Entry]) -> bytes:
    """Header, the items back to back from byte 200, then the Parquet footer."""
    blobs = [e.data if isinstance(e.data, bytes) else tortilla_bytes(e.data) for e in entries]
    offsets = np.cumsum([HEADER_SIZE] + [len(b) for b in blobs[:-1]]).tolist()
    rows = [{ID: e.id, FORMAT: NESTED if not isinstance(e.data, bytes) else e.file_format,
             OFFSET: int(offset), LENGTH: len(blob), **e.metadata}
            for e, blob, offset in zip(entries, blobs, offsets, strict=True)]
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    footer = sink.getvalue().to_pybytes()
    data = b"".join(blobs)
    header = (b"#y" + (HEADER_SIZE + len(data)).to_bytes(8, "little")
              + len(footer).to_bytes(8, "little") + (1).to_bytes(8, "little"))
    return header.ljust(HEADER_SIZE, b"\0") + data + footer


def geotiff_bytes(array: np.ndarray, compress: str = "zstd") -> bytes:
    """A (C, H, W) array as GeoTIFF bytes, compressed as GEO-Bench-2 writes them."""
    rasterio = _rasterio()
    count, height, width = array.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.io.MemoryFile() as memory:
            with memory.open(driver="GTiff", count=count, height=height, width=width,
                             dtype=array.dtype, compress=compress) as dst:
                dst.write(array)
            return memory.read()


def hdf5_bytes(array: np.ndarray) -> bytes:
    """An array as the bytes of an HDF5 file holding it as dataset ``data``, gzip-compressed
    as GEO-Bench-2 writes PASTIS' items."""
    memory = io.BytesIO()
    with h5py.File(memory, "w") as f:
        f.create_dataset("data", data=array, compression="gzip", chunks=True)
    return memory.getvalue()
