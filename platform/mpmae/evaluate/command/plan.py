"""What ``mpmae evaluate`` checks and decides before any cluster work: every dataset read
once, and per encoder and dataset a plan (bands matched by name, MMEarth's fill announced,
input statistics chosen, the samples each partition trains on and the test split).

A dataset is a GEO-Bench v1 folder (``task_specs.pkl``) or a GEO-Bench-2 one (tortilla
files, ``geobench2_source.py``); a GEO-Bench-2 dataset trains on its whole train split
(partition ``default``) and is scored by its leaderboard's metric (macro F1 for
multi-label)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mpmae.config import ConfigError
from mpmae.data.geobench.bands import BandMatch
from mpmae.data.geobench.dataset import GeoBenchDataset
from mpmae.data.geobench.errors import GeoBenchError
from mpmae.data.geobench.normalise import InputStats
from mpmae.data.geobench.partitions import DEFAULT_PARTITION
from mpmae.data.geobench.task_specs import TASK_SPECS_FILE, LabelKind
from mpmae.evaluate.command.encoders import Encoder
from mpmae.evaluate.command.geobench2_source import (
    TORTILLA_GLOB,
    GeoBench2Source,
    holds_tortillas,
    input_size_note,
    scheme_stats,
)
from mpmae.evaluate.command.inputs import Normaliser, size_note
from mpmae.evaluate.config import EvaluateConfig
from mpmae.evaluate.protocols.frozen import GEOBENCH2_METRICS, METRICS

TEST_SPLIT = "test"
VALID_SPLIT = "valid"
# The protocols that score pooled embeddings only, as a message names them.
POOLED_ONLY = {"knn": "kNN", "logistic": "the logistic probe"}
Dataset = GeoBenchDataset | GeoBench2Source


@dataclass(frozen=True)
class DatasetPlan:
    """One dataset, checked: its band match and statistics, the samples each partition
    trains on and the test split every one is scored on."""

    dataset: Dataset
    match: BandMatch
    stats: Normaliser
    trains: dict[str, tuple[str, ...]]
    test: tuple[str, ...]
    size_note: str
    stats_note: str
    # protocol logistic only: the valid split each partition chooses its L2 on
    valids: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def metric(self) -> str:
        return dataset_metric(self.dataset)


def dataset_metric(dataset: Dataset) -> str:
    """What the dataset is scored by (GEO-Bench-2: its leaderboard's metric)."""
    table = GEOBENCH2_METRICS if isinstance(dataset, GeoBench2Source) else METRICS
    return table[dataset.label_kind.value]


def unsupported_dataset(dataset: Dataset) -> str | None:
    """Why no protocol scores ``dataset`` (a GEO-Bench-2 task or layout not read), or None."""
    return dataset.unsupported() if isinstance(dataset, GeoBench2Source) else None


def open_dataset(folder: str | Path) -> Dataset:
    """The GEO-Bench v1 or GEO-Bench-2 dataset in ``folder``, told apart by its files."""
    if holds_tortillas(Path(folder)) and not (Path(folder) / TASK_SPECS_FILE).is_file():
        return GeoBench2Source.open(folder)
    return GeoBenchDataset.open(folder)


def open_datasets(paths: list[str]) -> list[tuple[Dataset, bool]]:
    """Every dataset the arguments name, read and checked once: (dataset, whether it was
    named itself)."""
    return [(open_dataset(folder), named) for folder, named in dataset_folders(paths)]


def dataset_folders(paths: list[str]) -> list[tuple[Path, bool]]:
    """Each argument is a dataset folder, or a benchmark folder holding several:
    (folder, whether it was named itself)."""
    folders = []
    for path in map(Path, paths):
        if (path / TASK_SPECS_FILE).is_file() or holds_tortillas(path):
            folders.append((path, True))
            continue
        found = sorted({p.parent for pattern in (TASK_SPECS_FILE, TORTILLA_GLOB)
                        for p in path.glob(f"*/{pattern}")})
        if not found:
            raise GeoBenchError(f"{path} holds no GEO-Bench dataset (no {TASK_SPECS_FILE} and "
                                f"no GEO-Bench-2 {TORTILLA_GLOB} files in it or its "
                                "subfolders): give a dataset or benchmark folder")
        folders += [(f, False) for f in found]
    return folders


def plan_all(encoders: list[Encoder], opened: list[tuple[Dataset, bool]],
             cfg: EvaluateConfig, progress: Callable[[str], None]
             ) -> dict[str, list[DatasetPlan]]:
    """Each encoder's plans. A planning note that is the same for every encoder (a dataset
    the protocol skips, the same band fill) is printed once, not once per encoder."""
    printed: set[str] = set()

    def once(line: str) -> None:
        if line not in printed:
            printed.add(line)
            progress(line)

    return {e.name: plan_datasets(e, opened, cfg, once) for e in encoders}


def plan_datasets(encoder: Encoder, datasets: list[tuple[Dataset, bool]],
                  cfg: EvaluateConfig, progress: Callable[[str], None]) -> list[DatasetPlan]:
    with_bands = _with_bands(datasets, encoder.input_bands, progress)
    return [_plan(encoder, dataset, cfg, progress)
            for dataset in _scorable(with_bands, cfg, progress)]


def _with_bands(datasets: list[tuple[Dataset, bool]], input_bands: tuple[str, ...],
                progress: Callable[[str], None]) -> list[tuple[Dataset, bool]]:
    """``datasets`` less the GEO-Bench-2 ones found in a benchmark folder that lack some
    of the encoder's bands (fotw's R, G, B, NIR for a 12-band MMEarth encoder), said so:
    one such dataset should not stop the rest. Named itself, it stops the command."""
    kept = []
    for dataset, named in datasets:
        if isinstance(dataset, GeoBench2Source) and not named:
            try:
                dataset.match_bands(input_bands)
            except GeoBenchError as exc:
                progress(f"skipping {exc}")
                continue
        kept.append((dataset, named))
    return kept


def check_datasets(paths: list[str], cfg: EvaluateConfig,
                   input_bands: tuple[str, ...]) -> None:
    """What planning checks before an encoder exists: the datasets, which the protocol
    scores, their valid splits (protocol logistic) and bands for ``input_bands``. For a
    command that makes the encoder first (``mpmae pretrain`` with ``eval.datasets``), so a
    mistake stops it before training, not after."""
    for dataset in _scorable(open_datasets(paths), cfg, lambda _: None):
        dataset.match_bands(input_bands)
        if cfg.protocol == "logistic":
            _valids(dataset, cfg)


def _scorable(datasets: list[tuple[Dataset, bool]], cfg: EvaluateConfig,
              progress: Callable[[str], None]) -> list[Dataset]:
    """The datasets the protocol can score; one it cannot is an error when named itself,
    and skipped (said so) when found in a benchmark folder."""
    found = [dataset for dataset, named in datasets
             if _protocol_scores(dataset, named, cfg, progress)]
    if not found:
        raise ConfigError(f"nothing to evaluate in {', '.join(d.name for d, _ in datasets)} "
                          f"with protocol {cfg.protocol}", key="protocol")
    return found


def _protocol_scores(dataset: Dataset, named: bool, cfg: EvaluateConfig,
                     progress: Callable[[str], None]) -> bool:
    if isinstance(dataset, GeoBench2Source) and (why := _geobench2_unsupported(dataset, cfg)):
        if named:
            raise ConfigError(f"{why} (in {dataset.folder}): give the datasets it can score",
                              key="protocol")
        progress(f"skipping {why}")
        return False
    if dataset.label_kind is LabelKind.REGRESSION and cfg.protocol != "linear":
        message = (f"{dataset.name} is a pixel-regression dataset, which only the frozen "
                   f"regression head scores, not protocol {cfg.protocol}")
        if named:
            raise ConfigError(f"{message}: use --protocol linear", key="protocol")
        progress(f"skipping {message}")
        return False
    if dataset.label_kind is LabelKind.SEGMENTATION and cfg.protocol in POOLED_ONLY:
        message = (f"{dataset.name} is a segmentation dataset, which "
                   f"{POOLED_ONLY[cfg.protocol]} does not score")
        if named:
            raise ConfigError(f"{message}: use --protocol linear (a frozen segmentation "
                              "head)", key="protocol")
        progress(f"skipping {message}")
        return False
    return True


def _geobench2_unsupported(dataset: GeoBench2Source, cfg: EvaluateConfig) -> str | None:
    if why := dataset.unsupported():
        return why
    if DEFAULT_PARTITION not in cfg.partitions:
        return (f"{dataset.name} is a GEO-Bench-2 dataset, which has only its whole train "
                f"split (partition {DEFAULT_PARTITION}), not {', '.join(cfg.partitions)}")
    return None


def _plan(encoder: Encoder, dataset: Dataset, cfg: EvaluateConfig,
          progress: Callable[[str], None]) -> DatasetPlan:
    """The checked plan of a dataset the protocol scores."""
    match = dataset.match_bands(encoder.input_bands)
    if match.filled:
        fills = ", ".join(f"{b} ← {s}" for b, s in match.filled.items())
        progress(f"{dataset.name}: bands missing from the dataset filled as MMEarth does: "
                 f"{fills}")
    if isinstance(dataset, GeoBench2Source):
        return _geobench2_plan(encoder, dataset, match, cfg, progress)
    stats, stats_note = _input_stats(dataset, match, encoder, cfg, progress)
    return DatasetPlan(dataset, match, stats,
                       {p: dataset.samples(p, "train") for p in cfg.partitions},
                       dataset.samples(DEFAULT_PARTITION, TEST_SPLIT),
                       size_note(dataset, encoder.module.patch_size), stats_note,
                       _valids(dataset, cfg) if cfg.protocol == "logistic" else {})


def _geobench2_plan(encoder: Encoder, dataset: GeoBench2Source, match: BandMatch,
                    cfg: EvaluateConfig, progress: Callable[[str], None]) -> DatasetPlan:
    """Partition ``default`` only: GEO-Bench-2's whole train split (a note when other
    partitions were asked for, which its datasets do not have)."""
    if cfg.partitions != [DEFAULT_PARTITION]:
        progress(f"{dataset.name}: a GEO-Bench-2 dataset, scored on partition "
                 f"{DEFAULT_PARTITION} only (its whole train split)")
    stats, stats_note = _geobench2_stats(encoder, dataset, match, cfg)
    size = input_size_note(dataset, dataset.native_size(match), encoder.module.patch_size)
    valids = _valids(dataset, cfg) if cfg.protocol == "logistic" else {}
    return DatasetPlan(dataset, match, stats, {DEFAULT_PARTITION: dataset.samples()},
                       dataset.samples(DEFAULT_PARTITION, TEST_SPLIT), size, stats_note,
                       valids)


def _geobench2_stats(encoder: Encoder, dataset: GeoBench2Source, match: BandMatch,
                     cfg: EvaluateConfig) -> tuple[Normaliser, str]:
    """``geobench2.normalise``: the train split's z-score, or one of the benchmark's schemes
    from its statistics file (under ``geobench2.stats``, else the benchmark folder)."""
    if cfg.normalise == "encoder":
        return _encoder_stats(encoder)
    scheme = cfg.geobench2.normalise
    if scheme == "train_zscore":
        return dataset.train_stats(match)
    root = Path(cfg.geobench2.stats) if cfg.geobench2.stats else dataset.folder.parent
    return scheme_stats(dataset, match, scheme, root)


def _valids(dataset: Dataset, cfg: EvaluateConfig) -> dict[str, tuple[str, ...]]:
    """Each partition's valid split, which protocol logistic chooses its L2 on."""
    partitions = [DEFAULT_PARTITION] if isinstance(dataset, GeoBench2Source) else cfg.partitions
    valids = {p: dataset.samples(p, VALID_SPLIT) for p in partitions}
    if empty := [p for p, names in valids.items() if not names]:
        raise ConfigError(f"{dataset.name}: partition {', '.join(empty)} has no {VALID_SPLIT} "
                          "samples, on which protocol logistic chooses its L2 strength: use "
                          "--protocol linear or knn, or a partition with a valid split",
                          key="protocol")
    return valids


def _input_stats(dataset: GeoBenchDataset, match: BandMatch, encoder: Encoder,
                 cfg: EvaluateConfig, progress: Callable[[str], None]
                 ) -> tuple[InputStats, str]:
    """The inputs' mean and std, and how they were chosen (recorded in every result row)."""
    if cfg.normalise == "dataset":
        if dataset.stats_scale == 1.0:
            return dataset.input_stats(match), "dataset band_stats.json"
        note = f"dataset band_stats.json x {dataset.stats_scale:g}"
        progress(f"{dataset.name}: normalised with {note}, as MMEarth's reference does")
        return dataset.input_stats(match), note
    return _encoder_stats(encoder)


def _encoder_stats(encoder: Encoder) -> tuple[InputStats, str]:
    level = (encoder.normalisation or {}).get("l1c")
    if not level:
        raise ConfigError(f"{encoder.name} carries no pretraining statistics: use "
                          "normalise=dataset", key="normalise")
    return (InputStats(np.asarray(level["mean"], np.float32),
                       np.asarray(level["std"], np.float32)), "encoder pretraining statistics")
