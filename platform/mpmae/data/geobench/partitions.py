"""``<name>_partition.json``: which samples form each split of each partition.

``default`` is the partition to evaluate on; ``0.01x_train`` … ``1.00x_train`` shrink only
``train`` (label efficiency). A partition may leave a split out; it is then empty.
"""

from __future__ import annotations

from pathlib import Path

from mpmae.data.geobench.errors import GeoBenchError
from mpmae.data.geobench.json_file import read_json_object

SPLITS = ("train", "valid", "test")
PARTITION_SUFFIX = "_partition.json"
DEFAULT_PARTITION = "default"

Partition = dict[str, tuple[str, ...]]


def partition_file(folder: Path, name: str) -> Path:
    return folder / f"{name}{PARTITION_SUFFIX}"


def read_partitions(folder: Path) -> dict[str, Partition]:
    """Every partition in ``folder`` by name; ``default`` must be one of them."""
    if not partition_file(folder, DEFAULT_PARTITION).is_file():
        raise GeoBenchError(f"{partition_file(folder, DEFAULT_PARTITION)} not found (or a "
                            "broken link): every GEO-Bench dataset folder has one")
    return {
        path.name[: -len(PARTITION_SUFFIX)]: _read_partition(path)
        for path in sorted(folder.glob(f"*{PARTITION_SUFFIX}"))
    }


def _read_partition(path: Path) -> Partition:
    expected = f"an object with keys among {list(SPLITS)}"
    doc = read_json_object(path, expected, "download the dataset again")
    if not set(doc) <= set(SPLITS):
        raise GeoBenchError(f"{path}: expected {expected}")
    for split, names in doc.items():
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise GeoBenchError(f"{path}: '{split}' is not a list of sample names")
    return {split: tuple(doc.get(split, ())) for split in SPLITS}
