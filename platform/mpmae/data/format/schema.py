"""The Arrow schema of a tile shard (format version 1), built from the modality catalogue.

One row per tile. Pixel modalities are ``fixed_shape_tensor`` columns of their native
dtype (C×H×W); image regressions are fixed-shape float32 vectors; image classes are class
indices. The tensors are canonical Arrow extension types, so plain pyarrow/pandas read them
without mpmae installed.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mpmae.modalities import MODALITIES, TaskKind

FORMAT_NAME = "mpmae-tiles"
FORMAT_VERSION = 1
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


def column_type(name: str, tile_size: int) -> pa.DataType:
    """The Arrow type of one modality's column."""
    m = MODALITIES[name]
    value_type = pa.from_numpy_dtype(np.dtype(m.dtype))
    if m.kind is TaskKind.IMAGE_CLASS:
        return value_type
    if m.kind.is_pixel:
        return pa.fixed_shape_tensor(value_type, [m.num_bands, tile_size, tile_size])
    return pa.fixed_shape_tensor(value_type, [m.num_bands])


def tile_schema(modalities: list[str], tile_size: int, with_label: bool = False) -> pa.Schema:
    """Schema of a shard holding ``modalities`` at ``tile_size`` (in catalogue order)."""
    fields = [pa.field("tile_id", pa.string()), pa.field("s2_type", pa.string()),
              pa.field("split", pa.string())]
    fields += [pa.field(n, column_type(n, tile_size)) for n in MODALITIES if n in modalities]
    fields.append(pa.field(
        PRESENCE_COLUMN, pa.fixed_shape_tensor(pa.uint8(), [len(presence_bands(modalities))])
    ))
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
            problems.append(
                f"column '{f.name}' is {actual.field(f.name).type}, expected {f.type}"
            )
    return problems


def tensor_column(values: np.ndarray) -> pa.ExtensionArray:
    """A ``fixed_shape_tensor`` array from an (N, …) numpy array (zero-copy when contiguous)."""
    return pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(values))
