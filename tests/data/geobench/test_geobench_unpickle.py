"""The allow-list unpickler: GEO-Bench pickles read, hostile ones refused without running."""

from __future__ import annotations

import builtins
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from geobench_layout import (
    CallsOnLoad,
    eurosat_like,
    set_pickle_attribute,
)

from mpmae.data.geobench.dataset import GeoBenchDataset
from mpmae.data.geobench.errors import GeoBenchError
from mpmae.data.geobench.task_specs import LabelKind, read_task_specs
from mpmae.data.geobench.unpickle import loads, loads_attribute
from mpmae.data.geobench.writer import (
    SENTINEL2_13,
    Classification,
    TaskSpecifications,
    dumps,
    write_task_specs,
)

# What a hostile file calls, and the name the pickle gives it.
HOSTILE = {
    "posix.system": lambda marker: CallsOnLoad(os.system, f"touch {marker}"),
    "builtins.exec": lambda marker: CallsOnLoad(builtins.exec, f"open({str(marker)!r}, 'w')"),
    "builtins.eval": lambda marker: CallsOnLoad(builtins.eval, f"open({str(marker)!r}, 'w')"),
    "subprocess.call": lambda marker: CallsOnLoad(subprocess.call, ["touch", str(marker)]),
}


@pytest.mark.parametrize("refused", sorted(HOSTILE))
def test_hostile_task_specs_is_refused_without_running(tmp_path, refused):
    folder = eurosat_like(tmp_path)
    marker = tmp_path / "pwned"
    # hidden inside an otherwise genuine task specs object
    specs = TaskSpecifications("m-eurosat", SENTINEL2_13, 10.0, (8, 8), Classification(10))
    specs.payload = HOSTILE[refused](marker)
    write_task_specs(folder, specs)
    with pytest.raises(GeoBenchError, match=rf"task_specs\.pkl: refused to unpickle {refused}"):
        GeoBenchDataset.open(folder)
    assert not marker.exists()


@pytest.mark.parametrize("refused", sorted(HOSTILE))
def test_hostile_sample_attribute_is_refused_without_running(tmp_path, refused):
    dataset = GeoBenchDataset.open(eurosat_like(tmp_path))
    marker = tmp_path / "pwned"
    name = dataset.samples()[0]
    set_pickle_attribute(tmp_path / "m-eurosat" / f"{name}.hdf5",
                         str(pickle.dumps({"bands_order": [], "x": HOSTILE[refused](marker)})))
    with pytest.raises(GeoBenchError, match=rf"{name}\.hdf5: refused to unpickle {refused}"):
        dataset.read_sample(name)
    assert not marker.exists()


def test_other_names_in_geobench_modules_are_refused():
    # geobench.dataset really has a load function, and GeobenchDataset opens files
    for module, name in (("geobench.dataset", "load_sample_hdf5"),
                         ("geobench.dataset", "GeobenchDataset"), ("ccb.io.task", "pickle")):
        data = f"c{module}\n{name}\n.".encode()
        with pytest.raises(GeoBenchError, match=rf"f\.pkl: refused to unpickle {module}\.{name}"):
            loads(data, "f.pkl")


def test_object_arrays_are_refused():
    with pytest.raises(GeoBenchError, match="object dtype"):
        loads(pickle.dumps(np.array([1, "a"], dtype=object)), "f.pkl")


def test_only_plain_ndarrays_are_rebuilt():
    # _reconstruct(OrderedDict, (0,), b'b'): an allowed class smuggled in as the array type
    data = (b"cnumpy._core.multiarray\n_reconstruct\n(ccollections\nOrderedDict\n"
            b"(I0\ntC\x01btR.")
    with pytest.raises(GeoBenchError, match=r"an array of type <class 'collections\.OrderedDict'>"):
        loads(data, "f.pkl")


def test_ndarray_cannot_be_called_to_read_bytes_as_objects():
    # ndarray((1,), "O", buffer) would dereference b"AAAAAAAA" as a pointer (a crash at best)
    hostile = CallsOnLoad(np.ndarray, (1,), "O", b"AAAAAAAA")
    with pytest.raises(GeoBenchError, match="not a readable pickle"):
        loads(pickle.dumps(hostile), "f.pkl")


class _FlippedDtype:
    """Pickles as a plain V8 dtype whose state sets the object flags (numpy accepts them)."""

    def __reduce__(self):
        return np.dtype, ("V8", False, True), (3, "|", None, None, None, 8, 1, 0x09)


def test_dtype_state_cannot_make_an_object_dtype():
    with pytest.raises(GeoBenchError, match="object dtype"):
        loads(pickle.dumps(_FlippedDtype()), "f.pkl")


class _ArrayWithFlippedDtype:
    """An array rebuilt from raw bytes with the flipped dtype: pointers read from bytes."""

    def __reduce__(self):
        reconstruct = np.zeros(1).__reduce__()[0]  # numpy's own, under numpy 1.x or 2.x
        return reconstruct, (np.ndarray, (0,), b"b"), (1, (1,), _FlippedDtype(), False,
                                                          b"AAAAAAAA")


def test_array_state_cannot_carry_an_object_dtype():
    with pytest.raises(GeoBenchError, match="object dtype"):
        loads(pickle.dumps(_ArrayWithFlippedDtype()), "f.pkl")


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_numpy_values_and_dates_round_trip(protocol):
    value = {"a": np.arange(6, dtype=np.int16).reshape(2, 3), "s": np.int64(3),
             "v": np.array([0, 1], np.uint8), "f": np.float32(0.5), "set": {1, 2}}
    got = loads(pickle.dumps(value, protocol=protocol), "f.pkl")
    assert got["a"].dtype == np.int16 and (got["a"] == value["a"]).all()
    assert got["s"] == 3 and got["f"] == 0.5 and got["set"] == {1, 2}


def test_attribute_must_be_a_bytes_literal():
    for text in ("__import__('os').system('true')", "'a string'", "b'\\x80", 42):
        with pytest.raises(GeoBenchError, match="not the bytes literal"):
            loads_attribute(text, "s.hdf5")


def test_truncated_pickle_is_an_error():
    with pytest.raises(GeoBenchError, match=r"f\.pkl: not a readable pickle"):
        loads(dumps({"a": np.arange(3)})[:-5], "f.pkl")


@pytest.mark.parametrize("package", ["geobench", "geobench.io", "ccb.io"])
def test_task_specs_under_every_historical_module_name(tmp_path, package):
    specs = read_task_specs(eurosat_like(tmp_path, package=package))
    assert specs.label_kind is LabelKind.CLASSIFICATION and specs.n_classes == 10
    assert specs.bands[7].name == "08 - NIR" and specs.bands[7].sensor == "Sentinel2"
    assert specs.bands[7].alt_names == ("8", "08", "NIR")
    assert specs.bands[7].wavelength == pytest.approx(0.842)


def test_reading_imports_none_of_the_pickled_packages(tmp_path):
    dataset = GeoBenchDataset.open(eurosat_like(tmp_path))
    sample = dataset.read_sample(dataset.samples()[0])
    assert sample.label == 0
    assert not [m for m in sys.modules if m.split(".")[0] in ("geobench", "ccb", "affine",
                                                              "rasterio")]
