"""HDF5 items (PASTIS' time series and masks), read from their bytes in memory.

GEO-Bench-2 writes each PASTIS modality as an HDF5 file holding one dataset, ``data``
(``generate_benchmark/pastis.py``): S2 as (T, 10, H, W) int16, the semantic mask as
(3, H, W) uint8 of which its loader reads the first band. Everything here is untrusted:
only the dataset ``data`` is read, and only when it is stored in these bytes (a link,
external storage or a virtual dataset could name other files on this machine: refused),
numeric, of the expected rank, and not larger than ``MAX_VALUES`` (a small compressed
item could otherwise inflate without bound).
"""

from __future__ import annotations

import io

import h5py
import numpy as np

from mpmae.data.geobench2.errors import GeoBench2Error

DATASET = "data"
MAX_VALUES = 1 << 27  # 128 Mi values: PASTIS' longest S2 series (61 x 10 x 128 x 128) is 10 Mi


def read_hdf5(data: bytes, where: str, ndim: int) -> np.ndarray:
    """The array of dataset ``data`` in the HDF5 file ``data``, checked to have ``ndim``
    dimensions and a numeric dtype."""
    try:
        with h5py.File(io.BytesIO(data), "r") as f:
            return _read(f, where, ndim)
    except OSError as exc:
        reason = " ".join(str(exc).split())[:200]
        raise GeoBench2Error(f"{where}: not a readable HDF5 file ({reason}); download the "
                             "dataset again") from None


def _read(f: h5py.File, where: str, ndim: int) -> np.ndarray:
    link = f.get(DATASET, getlink=True)
    if not isinstance(link, h5py.HardLink):
        found = "no" if link is None else f"a {type(link).__name__} as its"
        raise GeoBench2Error(f"{where}: HDF5 item has {found} dataset {DATASET!r}; download "
                             "the dataset again")
    dataset = f[DATASET]
    if not isinstance(dataset, h5py.Dataset) or dataset.is_virtual or dataset.external:
        raise GeoBench2Error(f"{where}: HDF5 item's {DATASET!r} is not an array stored in "
                             "the item (a group, virtual or external); download the dataset "
                             "again")
    if dataset.dtype.kind not in "iuf" or len(dataset.shape) != ndim:
        raise GeoBench2Error(f"{where}: HDF5 item's {DATASET!r} is {dataset.dtype} of shape "
                             f"{dataset.shape}, not a numeric array of {ndim} dimensions; "
                             "download the dataset again")
    if int(np.prod(dataset.shape)) > MAX_VALUES:
        raise GeoBench2Error(f"{where}: HDF5 item's {DATASET!r} of shape {dataset.shape} is "
                             f"larger than any GEO-Bench-2 item ({MAX_VALUES} values)")
    return dataset[()]
