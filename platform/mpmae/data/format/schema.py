"""The Arrow schema of a tile shard, built from the modality catalogue.

One row per tile. Pixel modalities hold C×H×W values of their native dtype per tile, image
regressions float32 vectors, the band-presence mask a uint8 vector; image classes are class
indices. Format v2 (written) stores each array as one ``fixed_size_binary`` value of raw
little-endian bytes (:mod:`mpmae.data.format.tile_array`); v1 (still read) stored them as
``fixed_shape_tensor`` columns, whose Parquet list encoding costs ~3× the CPU to decode.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mpmae.data.format.tile_array import TileType, tile_array, tile_field
from mpmae.modalities import MODALITIES, TaskKind

FORMAT_NAME = "mpmae-tiles"
FORMAT_VERSION = 2  # what writers write
READABLE_VERSIONS = (1, 2)
PRESENCE_COLUMN = "bands_present"
LABEL_COLUMN = "label"


def presence_bands(modalities: list[str]) -> list[str]:
    """``modality/band`` names, in the order of the per-tile band-presence vector."""
    return [
        f"{name}/{band}"
        for name in modalities
        if MODALITIES[name].kind is not TaskKind.IMAGE_CLASS
        for band in MODALITIES[name].bands
    ]


def column_field(name: str, tile_size: int, version: int = FORMAT_VERSION) -> pa.Field:
    """The Arrow field of one modality's column in format ``version``."""
    m = MODALITIES[name]
    dtype = np.dtype(m.dtype)
    if m.kind is TaskKind.IMAGE_CLASS:
        return pa.field(name, pa.from_numpy_dtype(dtype))
    shape = (m.num_bands, tile_size, tile_size) if m.kind.is_pixel else (m.num_bands,)
    return _array_field(name, shape, dtype, m.bands, version)


def _array_field(name: str, shape: tuple[int, ...], dtype: np.dtype, bands,
                 version: int) -> pa.Field:
    if version == 1:
        return pa.field(name, pa.fixed_shape_tensor(pa.from_numpy_dtype(dtype), list(shape)))
    return tile_field(name, shape, dtype.str, tuple(bands))


def tile_schema(modalities: list[str], tile_size: int, with_label: bool = False,
                version: int = FORMAT_VERSION) -> pa.Schema:
    """Schema of a shard of format ``version`` holding ``modalities`` at ``tile_size``
    (in catalogue order)."""
    fields = [pa.field("tile_id", pa.string()), pa.field("s2_type", pa.string()),
              pa.field("split", pa.string())]
    fields += [column_field(n, tile_size, version) for n in MODALITIES if n in modalities]
    bands = presence_bands(modalities)
    fields.append(_array_field(PRESENCE_COLUMN, (len(bands),), np.dtype(np.uint8), bands,
                               version))
    if with_label:
        fields.append(pa.field(LABEL_COLUMN, pa.uint8()))
    return pa.schema(fields)


def schema_problems(actual: pa.Schema, expected: pa.Schema) -> list[str]:
    """Human-readable differences between a shard's schema and the manifest's."""
    problems = []
    for f in expected:
        if f.name not in actual.names:
            problems.append(f"missing column '{f.name}'")
        elif not actual.field(f.name).type.equals(f.type):
            problems.append(f"column '{f.name}' is {describe_type(actual.field(f.name).type)}, "
                            f"expected {describe_type(f.type)}")
    return problems


def describe_type(t: pa.DataType) -> str:
    """A column type as a user reads it: ``tile uint16[13, 64, 64]`` (v2),
    ``tensor float32[13, 64, 64]`` (v1), else Arrow's name."""
    if isinstance(t, TileType):
        return f"tile {np.dtype(t.dtype).name}{list(t.shape)}"
    if isinstance(t, pa.FixedShapeTensorType):
        return f"tensor {np.dtype(t.value_type.to_pandas_dtype()).name}{list(t.shape)}"
    return str(t)


def array_column(values: np.ndarray, version: int = FORMAT_VERSION) -> pa.ExtensionArray:
    """An (N, …) numpy array as a column of format ``version`` (zero-copy when contiguous)."""
    if version == 1:
        return pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(values))
    return tile_array(values)
