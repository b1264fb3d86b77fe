"""A GEO-Bench-2 dataset folder as ``mpmae evaluate`` reads a GEO-Bench v1 one: samples by
name per split, a sample as named bands and a label, bands matched to an encoder's by name.

- **Found by its files**: a folder holding ``*.tortilla`` files is a GEO-Bench-2 dataset,
  named after the folder (``…/benv2``) or, failing that, after the one catalog dataset
  whose files are all there; a folder whose subfolders hold them is a benchmark folder.
- **One partition**: GEO-Bench-2 has no label-efficiency partitions; its train split is
  the ``default`` partition's, scored on its test split (``validation`` is the v1
  ``valid`` split that protocol logistic chooses its L2 on).
- **Input size**: native, as stored (padded to the patch size as v1's are); the
  benchmark's own ``input_size`` is recorded beside it in every row.
- **Normalisation**: by default a z-score per band with statistics of the train split (at
  most ``STATS_SAMPLES`` samples, evenly spaced), as v1 uses each dataset's own
  statistics: the benchmark ships its statistics files with its code, not its data, none
  for So2Sat and ForestNet, and its SatMAE scheme maps bands to [0, 1], not the z-scored
  range MMEarth encoders were pretrained on (docs/evaluate.md). Either of the benchmark's
  schemes on request (``scheme_stats``), from its published statistics files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mpmae.data.geobench.bands import BandMatch
from mpmae.data.geobench.normalise import BandStats, InputStats, input_stats
from mpmae.data.geobench.partitions import DEFAULT_PARTITION
from mpmae.data.geobench.task_specs import LabelKind
from mpmae.data.geobench2.catalog import (
    DATASETS,
    SENTINEL2,
    SUPPORTED_TASKS,
    DatasetInfo,
    s2_readable,
)
from mpmae.data.geobench2.dataset import GeoBench2Dataset, Sample
from mpmae.data.geobench2.errors import GeoBench2Error
from mpmae.data.geobench2.schemes import InputSchemes, input_schemes, read_scheme
from mpmae.data.geobench2.stats import stats_file
from mpmae.data.geobench2.tortilla import Item

TORTILLA_GLOB = "*.tortilla"
# v1's split names → GEO-Bench-2's
SPLITS = {"train": "train", "valid": "validation", "test": "test"}
STATS_SAMPLES = 1000  # train samples the normalisation statistics are computed on, at most


def holds_tortillas(path: Path) -> bool:
    """Whether ``path`` is a folder holding tortilla files (a GEO-Bench-2 dataset)."""
    return path.is_dir() and any(path.glob(TORTILLA_GLOB))


def dataset_name(folder: Path) -> str:
    """The catalog name of the dataset in ``folder``: the folder's own name when it is one,
    else the one dataset whose tortilla files are all in it."""
    if folder.name in DATASETS:
        return folder.name
    present = {f.name for f in folder.glob(TORTILLA_GLOB)}
    found = [name for name, info in DATASETS.items() if set(info.files) <= present]
    if len(found) == 1:
        return found[0]
    which = (f"they are the files of {' and '.join(found)}" if found
             else "they are no GEO-Bench-2 dataset's files")
    raise GeoBench2Error(f"{folder}: holds tortilla files {sorted(present)[:3]} but {which}; "
                         "name the folder after its dataset (benv2, so2sat, cloudsen12, …)")


@dataclass(frozen=True)
class GeoBench2Source:
    data: GeoBench2Dataset
    items: dict[str, Item]  # sample name (tortilla:id) → its footer row

    @classmethod
    def open(cls, folder: str | Path) -> GeoBench2Source:
        path = Path(folder)
        data = GeoBench2Dataset.open(path, dataset_name(path))
        items: dict[str, Item] = {}
        for item in (i for split in data.samples_by_split.values() for i in split):
            if item.id in items:
                raise GeoBench2Error(f"{item.path}: sample id {item.id!r} appears twice; "
                                     "download the dataset again")
            items[item.id] = item
        return cls(data, items)

    @property
    def name(self) -> str:
        return self.data.name

    @property
    def folder(self) -> Path:
        return self.data.folder

    @property
    def info(self) -> DatasetInfo:
        return self.data.info

    @property
    def label_kind(self) -> LabelKind:
        return LabelKind(self.info.task.value)

    @property
    def n_classes(self) -> int:
        return len(self.info.classes)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.info.classes

    def unsupported(self) -> str | None:
        """Why ``mpmae evaluate`` cannot score this dataset (None: it can)."""
        info = self.info
        if info.task not in SUPPORTED_TASKS:
            return (f"{info.name} is a GEO-Bench-2 {info.task.value.replace('_', ' ')} "
                    "dataset, which mpmae evaluate does not score")
        s2 = [m for m in info.modalities if m.sensor == SENTINEL2]
        if s2 and not s2_readable(info):
            return (f"{info.name} holds dated series, which mpmae evaluate does not read "
                    "yet")
        if not s2:
            sensors = ", ".join(dict.fromkeys(m.sensor for m in info.modalities))
            return (f"{info.name} has no Sentinel-2 image ({sensors}), which MMEarth "
                    "encoders take")
        return None

    def samples(self, partition: str = DEFAULT_PARTITION, split: str = "train"
                ) -> tuple[str, ...]:
        """The sample names of v1 split ``split`` (train, valid, test)."""
        if partition != DEFAULT_PARTITION:
            raise GeoBench2Error(f"{self.folder}: GEO-Bench-2 has no partition {partition!r}, "
                                 f"only its splits (partition {DEFAULT_PARTITION})")
        if split not in SPLITS:
            raise GeoBench2Error(f"split {split!r} is not one of {list(SPLITS)}")
        return tuple(i.id for i in self.data.samples(SPLITS[split]))

    def read_sample(self, name: str) -> Sample:
        if name not in self.items:
            raise GeoBench2Error(f"{self.folder}: no sample {name!r} in {self.name}")
        return self.data.read_sample(self.items[name])

    def match_bands(self, input_bands: Sequence[str]) -> BandMatch:
        return self.data.match_bands(input_bands)

    def native_size(self, match: BandMatch) -> tuple[int, int]:
        """(H, W) of the first test sample's matched bands."""
        first = self.samples(split="test")[0]
        height, width = self.read_sample(first).bands[match.sources[0]].shape[-2:]
        return height, width

    def train_stats(self, match: BandMatch) -> tuple[InputStats, str]:
        """Mean and std of each matched band over the train split (at most
        ``STATS_SAMPLES`` samples, evenly spaced), and a note saying so."""
        names = self.samples(split="train")
        picked = [names[int(i)] for i in
                  np.linspace(0, len(names) - 1, min(len(names), STATS_SAMPLES))]
        sources = sorted(set(match.sources))
        sums = {b: np.zeros(3) for b in sources}  # count, sum, sum of squares
        for name in picked:
            bands = self.read_sample(name).bands
            for b in sources:
                values = bands[b].astype(np.float64).ravel()
                sums[b] += (values.size, values.sum(), np.square(values).sum())
        stats = {}
        for b, (count, total, squares) in sums.items():
            mean = total / count
            std = float(np.sqrt(max(squares / count - mean * mean, 0.0)))
            if not std > 0:
                raise GeoBench2Error(f"{self.folder}: band {b!r} is constant over the train "
                                     "split; it cannot be normalised")
            stats[b] = BandStats(float(mean), std)
        note = f"train split statistics ({len(picked)} of {len(names)} samples)"
        return input_stats(match, stats), note


def scheme_stats(source: GeoBench2Source, match: BandMatch, scheme: str, root: Path
                 ) -> tuple[InputSchemes, str]:
    """The benchmark's ``scheme`` for each matched band, from ``source``'s statistics file
    under ``root`` (the folder of ``dataset_stats_<scheme>/``), and a note saying so."""
    path = stats_file(root, scheme, source.name)
    if not path.is_file():
        raise GeoBench2Error(f"{source.name}: no {scheme} statistics file {path} (GEO-Bench-2 "
                             "publishes none for so2sat and forestnet); copy its "
                             f"geobench_v2/datamodules/dataset_stats_{scheme}/ there, set "
                             "geobench2.stats, or use geobench2.normalise=train_zscore")
    schemes = input_schemes(match, read_scheme(path, source.info, scheme), path)
    return schemes, f"GEO-Bench-2 {scheme} ({path.name})"


def input_size_note(source: GeoBench2Source, size: tuple[int, int], patch: int) -> str:
    """How the images reach the encoder, and the size the benchmark itself uses."""
    h, w = size
    native = f"native {h}x{w}"
    if h % patch or w % patch:
        native = f"{h}x{w} zero-padded to {h + -h % patch}x{w + -w % patch} (patch {patch})"
    return f"{native}; the benchmark's input size {source.info.input_size}"
