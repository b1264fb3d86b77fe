"""What ranks a sweep's trials: the online linear probe, or a GEO-Bench (v1 or 2) dataset's
kNN, linear or logistic score computed by ``mpmae evaluate``'s own code.

ASHA always stops trials on the probe, which every trial reports as it trains: scoring a
GEO-Bench dataset at each rung would embed it once per rung and trial. With
``objective.dataset`` set, a trial that trains to its last step then evaluates its own
encoder on that dataset (an evaluation run in MLflow, the score as a ``downstream/…``
metric on the trial's run) and records the score in ``objective.json`` in its folder; that
score, not the probe, then ranks the finished trials: it picks the best trial and the
encoder registered. Trials ASHA stopped have no score and are not ranked.

The protocol is part of the objective's name (``downstream/DATASET/PROTOCOL/…``): MMEarth's
linear recipe and the converged logistic probe score the same features differently
(docs/evaluate.md), so their scores never share a metric, and a trial scored under one is
not ranked under the other.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from mpmae.config import ConfigError, doc, require
from mpmae.evaluate import KnnConfig, LinearConfig, LogisticConfig

if TYPE_CHECKING:
    from mpmae.storage import Location
    from mpmae.train.config import PretrainConfig

PROBE = "probe_accuracy"
OBJECTIVE_FILE = "objective.json"


@dataclass(frozen=True)
class ObjectiveConfig:
    """Empty ``dataset``: the probe's last accuracy ranks the trials. Else every trial
    that finishes is scored on that dataset, and the score ranks them (ASHA still stops
    trials on the probe while they train)."""

    dataset: str = field(default="", metadata=doc(
        "GEO-Bench dataset folder (single- or multi-label classification) that scores each "
        "finished trial's encoder, e.g. <data>/geobench/synth-landscape, or a GEO-Bench-2 "
        "one (its tortilla files, e.g. <gb2>/benv2: partition default, its leaderboard's "
        "metric); shared by every node on a cluster. Empty: the online probe's accuracy"))
    protocol: Literal["knn", "linear", "logistic"] = field(default="knn", metadata=doc(
        "knn: no training, seconds; linear: a fresh linear head per seed, MMEarth's recipe "
        "(100 epochs: under-trained on small splits); logistic: logistic regression fitted "
        "to convergence, its L2 chosen on the partition's valid split (docs/evaluate.md)"))
    partition: str = field(default="default", metadata=doc(
        "The dataset's partition to train on (e.g. 0.10x_train); scored on its default "
        "partition's test split"))
    seeds: int = field(default=1, metadata=doc(
        "linear: head trainings averaged into the score (kNN and logistic run once)"))
    knn: KnnConfig = field(default_factory=KnnConfig, metadata=doc("The kNN protocol"))
    linear: LinearConfig = field(default_factory=LinearConfig, metadata=doc(
        "The linear probe's recipe"))
    logistic: LogisticConfig = field(default_factory=LogisticConfig, metadata=doc(
        "The converged logistic probe (protocol logistic)"))

    def validate(self) -> None:
        require(bool(self.partition), "partition", "name a partition, e.g. default")
        require(self.seeds >= 1, "seeds", "must be 1 or more")


def objective_name(cfg: ObjectiveConfig, input_bands: list[tuple[str, ...]]) -> str:
    """The objective's name (its metric on a trial's run), after checking that the
    dataset can score every trial: a GEO-Bench classification dataset holding the
    partition and the bands of every searched pretext set. Reads only the dataset's
    small files, so it runs before any cluster work."""
    if not cfg.dataset:
        return PROBE
    from mpmae.data.geobench.errors import GeoBenchError
    from mpmae.data.geobench.task_specs import LabelKind
    from mpmae.data.geobench2.errors import GeoBench2Error
    from mpmae.evaluate import dataset_metric, downstream_key, open_dataset, unsupported_dataset

    key = "objective.dataset"
    try:
        dataset = open_dataset(cfg.dataset)
        if why := unsupported_dataset(dataset):
            raise ConfigError(f"{why}: the objective needs a classification dataset", key)
        if dataset.label_kind is LabelKind.SEGMENTATION:
            raise ConfigError(f"{dataset.folder} is a segmentation dataset; the objective "
                              "needs a classification one", key)
        for split, partition in _splits(cfg):
            if not dataset.samples(partition, split):
                why = (" (protocol logistic chooses its L2 strength on it) or "
                       "objective.protocol" if split == "valid" else "")
                raise ConfigError(f"{dataset.folder}: partition {partition} has no {split} "
                                  f"samples; choose another objective.partition{why}", key)
        for bands in input_bands:
            dataset.match_bands(bands)
    except (GeoBenchError, GeoBench2Error) as e:
        raise ConfigError(str(e), key) from None
    return downstream_key(dataset.name, cfg.protocol, cfg.partition, dataset_metric(dataset))


def _splits(cfg: ObjectiveConfig) -> list[tuple[str, str]]:
    """The (split, partition) pairs the objective reads: the logistic probe also chooses
    its L2 strength on the partition's valid split."""
    from mpmae.data.geobench.partitions import DEFAULT_PARTITION

    pairs = [("train", cfg.partition), ("test", DEFAULT_PARTITION)]
    return [*pairs, ("valid", cfg.partition)] if cfg.protocol == "logistic" else pairs


def score_trial(cfg: ObjectiveConfig, trial: PretrainConfig, trial_dir: Location) -> None:
    """Evaluate the finished trial's encoder (found by its run name) on the objective's
    dataset and record the score in the trial's folder."""
    from mpmae.evaluate import cells, downstream_key
    from mpmae.pipeline.run_encoder import evaluate_run_encoder

    rows = evaluate_run_encoder(trial, [cfg.dataset], lambda _: None, protocol=cfg.protocol,
                                partitions=[cfg.partition], seeds=cfg.seeds, knn=cfg.knn,
                                linear=cfg.linear, logistic=cfg.logistic)
    [(key, cell)] = cells(rows).items()
    record = {"name": downstream_key(key.dataset, key.protocol, key.partition, cell.metric),
              "value": cell.mean, "ci95": list(cell.ci95), "recipe": rows[0].recipe}
    trial_dir.join(OBJECTIVE_FILE).write_bytes_atomic(json.dumps(record).encode())


def read_score(trial_dir: Location, name: str) -> float | None:
    """The score a trial recorded for objective ``name``; None if it recorded none (it
    did not finish, or was scored for another objective)."""
    try:
        record = json.loads(trial_dir.join(OBJECTIVE_FILE).read_bytes())
    except FileNotFoundError:
        return None
    value = record.get("value") if record.get("name") == name else None
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

