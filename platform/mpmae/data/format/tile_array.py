"""The ``mpmae.tile`` Arrow extension type: one raw little-endian C-order array per row.

Format v2 stores every array-valued column (pixel modalities, image-level vectors, the
band-presence mask) as ``fixed_size_binary``: one value per tile holding its C×H×W (or C)
values in the native dtype. Parquet decodes such a column as one block of bytes, where a
list column (v1's ``fixed_shape_tensor``) pays for repetition and definition levels per
value: measured ~4× the CPU of the same bytes as plain binary (docs/tile-format.md).

The shape, dtype and band names ride twice: in the extension type's serialized metadata
(so mpmae's readers get ndarrays) and as plain field metadata (``mpmae.shape``,
``mpmae.dtype``, ``mpmae.bands``), so a pyarrow user without mpmae, who sees the storage
type ``fixed_size_binary``, can reshape the bytes with numpy alone.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math

import numpy as np
import pyarrow as pa

EXTENSION_NAME = "mpmae.tile"
SHAPE_KEY, DTYPE_KEY, BANDS_KEY = "mpmae.shape", "mpmae.dtype", "mpmae.bands"


@functools.lru_cache(maxsize=1024)
def _deserialized(serialized: bytes) -> TileType:
    # pyarrow rebuilds the type of every tile column of every footer it reads: at start-up
    # that is thousands of footers of a few distinct types, and each rebuild runs Python
    # (JSON, numpy dtype, the type's init). A type is immutable, so one instance serves.
    meta = json.loads(serialized)
    return TileType(tuple(meta["shape"]), meta["dtype"])


class TileType(pa.ExtensionType):
    """``fixed_size_binary`` whose values are arrays of ``shape`` and ``dtype`` (a numpy
    dtype string, always little-endian, e.g. ``<u2``)."""

    def __init__(self, shape: tuple[int, ...], dtype: str) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype).newbyteorder("<").str
        width = math.prod(self.shape) * np.dtype(self.dtype).itemsize
        super().__init__(pa.binary(width), EXTENSION_NAME)

    def __arrow_ext_serialize__(self) -> bytes:
        return json.dumps({"shape": list(self.shape), "dtype": self.dtype}).encode()

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: pa.DataType, serialized: bytes) -> TileType:
        return _deserialized(serialized)

    def __arrow_ext_class__(self) -> type[pa.ExtensionArray]:
        return TileArray

    def __reduce__(self):
        return TileType, (self.shape, self.dtype)

    def __eq__(self, other: object) -> bool:
        # pyarrow's default compares only name and storage: (2, 3) would equal (3, 2).
        if not isinstance(other, TileType):
            return NotImplemented
        return (self.shape, self.dtype) == (other.shape, other.dtype)

    def __ne__(self, other: object) -> bool:  # pyarrow's slot would not ask __eq__
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash((EXTENSION_NAME, self.shape, self.dtype))

    def __repr__(self) -> str:
        return f"TileType({self.shape}, {self.dtype!r})"


class TileArray(pa.ExtensionArray):
    """An array of ``TileType``: ``to_numpy_ndarray`` views its bytes as (N, *shape)."""

    def to_numpy_ndarray(self) -> np.ndarray:
        """(N, *shape) array viewing the Arrow buffer (zero-copy, read-only)."""
        return storage_ndarray(self.storage, self.type.shape, self.type.dtype)

    def to_numpy(self, zero_copy_only: bool = True, writable: bool = False) -> np.ndarray:
        values = self.to_numpy_ndarray()
        return values.copy() if writable else values


def storage_ndarray(storage: pa.FixedSizeBinaryArray, shape: tuple[int, ...],
                    dtype: str) -> np.ndarray:
    """The values of a ``fixed_size_binary`` array as (N, *shape), honouring its offset
    (a slice) without copying. Null slots hold whatever bytes the buffer has."""
    width = storage.type.byte_width
    values = storage.buffers()[1]
    if values is None:  # a zero-length array may carry no buffer
        return np.empty((len(storage), *shape), dtype)
    flat = np.frombuffer(values, np.uint8, count=len(storage) * width,
                         offset=storage.offset * width)
    return flat.view(dtype).reshape(len(storage), *shape)


def tile_array(values: np.ndarray) -> TileArray:
    """A ``TileType`` array from an (N, …) numpy array (zero-copy when contiguous LE)."""
    values = np.ascontiguousarray(values, np.dtype(values.dtype).newbyteorder("<"))
    kind = TileType(values.shape[1:], values.dtype.str)
    storage = pa.Array.from_buffers(kind.storage_type, len(values),
                                    [None, pa.py_buffer(values)])
    return pa.ExtensionArray.from_storage(kind, storage)


def tile_field(name: str, shape: tuple[int, ...], dtype: str,
               bands: tuple[str, ...]) -> pa.Field:
    """A ``TileType`` field whose metadata repeats shape, dtype and bands for plain readers."""
    kind = TileType(shape, dtype)
    return pa.field(name, kind, metadata={
        SHAPE_KEY: json.dumps(list(kind.shape)), DTYPE_KEY: kind.dtype,
        BANDS_KEY: json.dumps(list(bands))})


def column_ndarray(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An array-valued column of either format version as one (N, …) ndarray (a view
    when it is one chunk)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return column.to_numpy_ndarray()


def register() -> None:
    """Make pyarrow read ``mpmae.tile`` columns as ``TileType`` (idempotent)."""
    with contextlib.suppress(pa.ArrowKeyError):  # registered before: a reloaded module
        pa.register_extension_type(TileType((1,), "<u1"))
