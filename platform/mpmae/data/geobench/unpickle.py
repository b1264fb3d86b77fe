"""Allow-list unpickling: GEO-Bench's pickles without running anything they name.

Pickles in downloaded data can run code (any importable callable can be named and
called). :class:`SafeUnpickler` resolves only the names GEO-Bench 1.0 files use: the
geobench classes and affine/rasterio values become inert stand-ins
(:mod:`~mpmae.data.geobench.standins`), dates, containers and numpy arrays are
rebuilt by their own (data-only) constructors, and every other name raises
:class:`GeoBenchError` naming the file and the refused ``module.name``.
"""

from __future__ import annotations

import ast
import collections
import datetime
import io
import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mpmae.data.geobench.errors import GeoBenchError
from mpmae.data.geobench.standins import STAND_INS

try:
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # numpy < 2
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric


class _UnsafeNumpy(Exception):
    """A numpy value the allow-list refuses (turned into a GeoBenchError by the caller)."""


def _dtype(*args: Any) -> np.dtype:
    # Object dtypes hold Python object pointers: given raw bytes, numpy dereferences them.
    # GEO-Bench writes none.
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise _UnsafeNumpy("an object dtype")
    return dtype


class _NdarrayType:
    """What a pickle's ``numpy.ndarray`` resolves to: a token for _reconstruct's array type.

    numpy's pickles only pass the class to ``_reconstruct``; handing out the real class would
    let a pickle call ``ndarray(shape, "O", buffer)``, which reads bytes as object pointers.
    """


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    # A subclass would bring its own __setstate__; only plain arrays are data.
    if subtype is not _NdarrayType:
        raise _UnsafeNumpy(f"an array of type {subtype!r}")
    return _multiarray._reconstruct(np.ndarray, shape, _dtype(dtype))


def _scalar(dtype: Any, data: Any) -> np.generic:
    return _multiarray.scalar(_dtype(dtype), data)


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    # Pickle protocol 5 (the default from Python 3.14) rebuilds arrays through this.
    return _numeric._frombuffer(buffer, _dtype(dtype), shape, order)


_NUMPY = {("numpy", "dtype"): _dtype, ("numpy", "ndarray"): _NdarrayType}
for _module in ("numpy.core", "numpy._core"):  # numpy 1.x writes the first, 2.x the second
    _NUMPY[(f"{_module}.multiarray", "_reconstruct")] = _reconstruct
    _NUMPY[(f"{_module}.multiarray", "scalar")] = _scalar
    _NUMPY[(f"{_module}.numeric", "_frombuffer")] = _frombuffer

_PLAIN = {
    ("datetime", "date"): datetime.date,
    ("datetime", "datetime"): datetime.datetime,
    ("datetime", "timedelta"): datetime.timedelta,
    # geobench's own allow-list has these two (times and time zones of acquisitions)
    ("datetime", "time"): datetime.time,
    ("datetime", "timezone"): datetime.timezone,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("collections", "OrderedDict"): collections.OrderedDict,
}

ALLOWED: dict[tuple[str, str], Any] = {**STAND_INS, **_NUMPY, **_PLAIN}


class SafeUnpickler(pickle._Unpickler):
    """An unpickler that resolves only :data:`ALLOWED` names and keeps numpy data-only.

    This is the pure-Python twin of ``pickle.Unpickler`` (same opcodes, same semantics):
    only it lets us check the BUILD opcode. A pickle may BUILD a dtype it made (``>f8``,
    ``V8``, …) with state whose flags turn it into an object dtype, then build an array
    with it from raw bytes; checking names alone cannot see that. The pickles are a few
    kilobytes, so the slower unpickler costs nothing measurable.
    """

    def __init__(self, file: io.BufferedIOBase, where: str) -> None:
        super().__init__(file)
        self.where = where

    def _load_build(self) -> None:
        # Every dtype comes from _dtype (no object dtypes) and may change only here, so
        # checking it after its BUILD keeps object dtypes out of every array and scalar.
        inst = self.stack[-2]
        pickle._Unpickler.load_build(self)
        if isinstance(inst, np.dtype) and inst.hasobject:
            raise _UnsafeNumpy("an object dtype")

    dispatch: ClassVar[dict] = {**pickle._Unpickler.dispatch, pickle.BUILD[0]: _load_build}

    def find_class(self, module: str, name: str) -> Any:
        found = ALLOWED.get((module, name))
        if found is None:
            raise GeoBenchError(
                f"{self.where}: refused to unpickle {module}.{name}, which GEO-Bench data "
                "never holds; the file is damaged or hostile, download it again"
            )
        return found


def loads(data: bytes, where: str) -> Any:
    """Unpickle ``data`` with the allow-list; ``where`` names the source in errors."""
    try:
        return SafeUnpickler(io.BytesIO(data), where).load()
    except GeoBenchError:
        raise
    except _UnsafeNumpy as exc:
        raise GeoBenchError(f"{where}: refused to unpickle {exc}; the file is damaged or "
                            "hostile, download it again") from None
    except Exception as exc:  # malformed bytes can fail anywhere inside pickle
        reason = " ".join(str(exc).split())
        raise GeoBenchError(f"{where}: not a readable pickle ({type(exc).__name__}: "
                            f"{reason}); download it again") from None


def load_file(path: Path) -> Any:
    """Unpickle a file (``task_specs.pkl``) with the allow-list."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise GeoBenchError(f"{path}: cannot read ({exc.strerror}); is this a GEO-Bench "
                            "dataset folder?") from None
    return loads(data, str(path))


def loads_attribute(text: Any, where: str) -> Any:
    """Unpickle an HDF5 ``pickle`` attribute, which geobench writes as ``str(pickle.dumps(d))``.

    ``ast.literal_eval`` turns the ``"b'...'"`` text back into bytes and evaluates
    literals only, so the text itself cannot run anything.
    """
    try:
        data = ast.literal_eval(text) if isinstance(text, str) else None
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        data = None
    if not isinstance(data, bytes):
        raise GeoBenchError(f"{where}: the 'pickle' attribute is not the bytes literal "
                            "geobench writes; download the file again")
    return loads(data, where)
