"""A GEO-Bench v1.0 dataset folder (``classification_v1.0/m-eurosat``, …), read safely.

    task_specs.pkl            bands, patch size, label type (allow-list unpickled)
    band_stats.json           per-band statistics (normalisation)
    <name>_partition.json     sample names per split; ``default`` and ``0.01x_train`` …
    <sample_name>.hdf5        one per sample

``open`` reads and checks the small files; samples are read one at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mpmae.data.geobench.bands import BandMatch, match_bands
from mpmae.data.geobench.errors import GeoBenchError
from mpmae.data.geobench.normalise import (
    STATS_SCALE,
    BandStats,
    InputStats,
    input_stats,
    read_band_stats,
)
from mpmae.data.geobench.partitions import (
    DEFAULT_PARTITION,
    SPLITS,
    Partition,
    partition_file,
    read_partitions,
)
from mpmae.data.geobench.sample import SAMPLE_SUFFIX, Sample, read_sample_file
from mpmae.data.geobench.task_specs import BandSpec, LabelKind, TaskSpecs, read_task_specs


@dataclass(frozen=True)
class GeoBenchDataset:
    folder: Path
    specs: TaskSpecs
    partitions: dict[str, Partition]
    band_stats: dict[str, BandStats]

    @classmethod
    def open(cls, folder: str | Path) -> GeoBenchDataset:
        """Read a dataset folder's task specs, band statistics and partitions."""
        path = Path(folder)
        if not path.is_dir():
            raise GeoBenchError(f"{path} is not a folder: give a GEO-Bench dataset folder "
                                "such as $GEO_BENCH_DIR/classification_v1.0/m-eurosat")
        return cls(path, read_task_specs(path), read_partitions(path), read_band_stats(path))

    @property
    def name(self) -> str:
        # geobench itself names a dataset by its folder, whatever the pickle says
        return self.folder.name

    @property
    def label_kind(self) -> LabelKind:
        return self.specs.label_kind

    @property
    def n_classes(self) -> int:
        return self.specs.n_classes

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.specs.class_names

    @property
    def bands(self) -> tuple[BandSpec, ...]:
        """Every input band (name, alt names, sensor, resolution, wavelength), label excluded."""
        return self.specs.bands

    @property
    def band_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.specs.bands)

    @property
    def patch_size(self) -> tuple[int, ...]:
        return self.specs.patch_size

    @property
    def partition_names(self) -> tuple[str, ...]:
        return tuple(self.partitions)

    def samples(self, partition: str = DEFAULT_PARTITION, split: str = "train") -> tuple[str, ...]:
        """The sample names of ``split`` in ``partition`` (``"default"``, ``"0.10x_train"``, …)."""
        if partition not in self.partitions:
            raise GeoBenchError(f"{partition_file(self.folder, partition)} not found: "
                                f"{self.name} has partitions {list(self.partitions)}")
        if split not in SPLITS:
            raise GeoBenchError(f"split {split!r} is not one of {list(SPLITS)}")
        return self.partitions[partition][split]

    def read_sample(self, name: str) -> Sample:
        """``(bands, label)`` of one sample: band name → (H, W) array, and its checked label."""
        # Names come from the partition files, which are data: keep them inside the folder.
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise GeoBenchError(f"{self.folder}: sample name {name!r} is not a file name; "
                                "check the partition files")
        path = self.folder / f"{name}{SAMPLE_SUFFIX}"
        # A symlinked sample must not lead out of the dataset folder.
        if path.is_symlink() and not path.resolve().is_relative_to(self.folder.resolve()):
            raise GeoBenchError(f"{path} links outside {self.folder}; GEO-Bench sample files "
                                "are plain files: download the dataset again")
        return read_sample_file(path, self.specs)

    def match_bands(self, input_bands: Sequence[str]) -> BandMatch:
        """Where each of an encoder's ``input_bands`` comes from here (filled ones listed)."""
        return match_bands(self.name, self.specs.bands, input_bands)

    @property
    def stats_scale(self) -> float:
        """What this dataset's statistics are multiplied by before use (1 but for So2Sat)."""
        return STATS_SCALE.get(self.name, 1.0)

    def input_stats(self, match: BandMatch) -> InputStats:
        """This dataset's mean and std for each input band of ``match``, in its order."""
        return input_stats(match, self.band_stats, self.stats_scale)
