"""Turning chunks of tiles (numpy arrays) into Arrow tables of the tile format."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mpmae.data.format.band_stats import valid_mask
from mpmae.data.format.schema import (
    FORMAT_VERSION,
    LABEL_COLUMN,
    PRESENCE_COLUMN,
    array_column,
    tile_schema,
)
from mpmae.modalities import MODALITIES, TaskKind


def presence_from_data(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """(N, bands) uint8: a band is present in a tile if any of its pixels holds data.

    Used where the source does not say which bands exist (no ``tile_info.json`` BANDS).
    """
    parts = []
    for name in (n for n in MODALITIES if n in arrays):
        if MODALITIES[name].kind is TaskKind.IMAGE_CLASS:
            continue
        values = arrays[name]
        flat = values.reshape(values.shape[0], values.shape[1], -1)
        parts.append(valid_mask(name, flat).any(axis=2))
    return np.concatenate(parts, axis=1).astype(np.uint8)


def tiles_to_table(
    arrays: dict[str, np.ndarray],
    tile_ids: list[str],
    s2_types: list[str],
    split: str,
    tile_size: int,
    presence: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    version: int = FORMAT_VERSION,
) -> pa.Table:
    """A table of the tile schema (format ``version``) from per-modality (N, …) arrays of
    native dtypes."""
    modalities = [n for n in MODALITIES if n in arrays]
    schema = tile_schema(modalities, tile_size, with_label=labels is not None, version=version)
    n = len(tile_ids)
    columns: dict[str, pa.Array] = {
        "tile_id": pa.array(tile_ids, pa.string()),
        "s2_type": pa.array(s2_types, pa.string()),
        "split": pa.array([split] * n, pa.string()),
    }
    for name in modalities:
        values = np.asarray(arrays[name], dtype=MODALITIES[name].dtype)
        if MODALITIES[name].kind is TaskKind.IMAGE_CLASS:
            columns[name] = pa.array(values)
        else:
            columns[name] = array_column(values, version)
    columns[PRESENCE_COLUMN] = array_column(
        presence if presence is not None else presence_from_data(arrays), version
    )
    if labels is not None:
        columns[LABEL_COLUMN] = pa.array(np.asarray(labels, np.uint8))
    return pa.Table.from_pydict(columns, schema=schema)
