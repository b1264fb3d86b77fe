"""GEO-Bench-2's leaderboard arithmetic, and its submission file.

Facts from The-AI-Alliance/GEO-Bench-2-Leaderboard at 1659ccf (2026-01-19), our own code:

- **Score per seed**: the dataset's metric on its test split (``METRICS``: terratorch's
  ``Overall_Accuracy``, ``Multilabel_F1_Score``, ``Multiclass_Jaccard_Index`` …). BioMassters'
  RMSE is the one lower-is-better metric; the submitter turns it into
  ``1 - RMSE * 0.2537951171398163`` (``compute_tools.scale_rmse``, ``BIOMASSTERS_STD``) and
  the file records that number under ``Metric`` ``RMSE``.
- **Normalisation**: ``(score - low) / (high - low)`` per dataset, not clipped
  (``compute_tools.Normalizer``); ``low``/``high`` are the smallest and largest score of the
  leaderboard's two reference full fine-tuning submissions, all backbones and seeds
  (``NORM_BASE_SUBMISSION``, ``utils/normalizer/leaderboard_combined/normalizer.json``),
  shipped here as ``LEADERBOARD_BOUNDS``. The leaderboard rebuilds that file whenever its
  reference submissions change; pass ``bounds`` to use another.
- **Per dataset**: the IQM (``scipy.stats.trim_mean``, 25 % cut each end) of the normalised
  seed scores, with the standard error of the seeds left after that trim.
- **Per capability group**: a stratified bootstrap, 100 repetitions; repetition ``i`` draws,
  with ``numpy.random.RandomState(100 + i)``, every (backbone, dataset) stratum's seeds with
  replacement, strata in sorted order (pandas ``groupby(...).sample(frac=1, replace=True,
  random_state=100 + i)``), and takes the IQM of all a backbone's drawn scores in the
  group. The leaderboard shows the mean of the 100 IQMs and, as its error, their standard
  error (``scipy.stats.sem``); it publishes no percentile interval. A backbone lacking one of
  the group's datasets gets no value.
- **Seeds**: every (backbone, dataset) has exactly ``REQUIRED_SEEDS`` (5) scores.

Added by mpmae, not shown by the leaderboard: the point IQM of all the group's scores, the
2.5/97.5 percentiles of the same 100 bootstrap IQMs, and an ``ALL`` row over every dataset
given.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mpmae.data.geobench2.catalog import DATASETS, GROUPS, REQUIRED_SEEDS, DatasetInfo, Task
from mpmae.errors import MpmaeError
from mpmae.evaluate.reports.normalised_score import Bounds

METRICS: dict[Task, str] = {
    Task.CLASSIFICATION: "Overall_Accuracy",  # torchmetrics MulticlassAccuracy, micro
    Task.MULTI_LABEL: "Multilabel_F1_Score",  # MultilabelF1Score: macro over labels, p>0.5
    Task.SEGMENTATION: "Multiclass_Jaccard_Index",  # MulticlassJaccardIndex, macro: mIoU
    Task.REGRESSION: "RMSE",
    Task.DETECTION: "test_test_map",
    Task.INSTANCE_SEGMENTATION: "test_test_segm_map",
}
BIOMASSTERS_STD = 0.2537951171398163
BOOTSTRAP_REPEATS = 100
BOOTSTRAP_SEED = 100  # repetition i uses RandomState(BOOTSTRAP_SEED + i)
TRIM = 0.25
ALL = "ALL"  # the row over every dataset given (mpmae's, not a leaderboard column)

# utils/normalizer/leaderboard_combined/normalizer.json at 1659ccf: [low, high] per dataset.
LEADERBOARD_BOUNDS: dict[str, Bounds] = {name: Bounds(low, high) for name, (low, high) in {
    "treesatai": (0.5388144254684448, 0.6719674468040466),
    "cloudsen12": (0.5892206430435181, 0.7069313526153564),
    "dynamic_earthnet": (0.1660756915807724, 0.3561779260635376),
    "forestnet": (0.4642497599124908, 0.6082578301429749),
    "spacenet2": (0.8431392908096313, 0.8844738006591797),
    "fotw": (0.5552823543548584, 0.6179081797599792),
    "caffe": (0.5596897006034851, 0.7002602815628052),
    "burn_scars": (0.6498024463653564, 0.9017086625099182),
    "pastis": (0.2038679122924804, 0.43324875831604),
    "benv2": (0.7138733267784119, 0.7664718627929688),
    "kuro_siwo": (0.3207171559333801, 0.7027350068092346),
    "spacenet7": (0.3912872672080993, 0.6402554512023926),
    "flair2": (0.4062314331531524, 0.5503402948379517),
    "biomassters": (0.9482341889789176, 0.9600944613389646),
    "so2sat": (0.5111562013626099, 0.6541582345962524),
    "everwatch": (0.2177008986473083, 0.3155497610569),
    "nzcattle": (0.2819505035877228, 0.401744931936264),
    "pastis_r": (0.084835797548294, 0.1661437004804611),
    "substation": (0.1244395673274993, 0.2031933367252349),
}.items()}


class LeaderboardError(MpmaeError, ValueError):
    """Scores the leaderboard would not take; the message names the encoder and dataset."""


@dataclass(frozen=True)
class SeedScore:
    """One test score: ``value`` in the dataset's ``metric`` as measured (BioMassters: the
    RMSE itself, turned into the leaderboard's score here)."""

    encoder: str
    dataset: str
    seed: int
    metric: str
    value: float


@dataclass(frozen=True)
class DatasetRow:
    encoder: str
    dataset: str
    metric: str
    mean: float  # of the leaderboard scores (BioMassters flipped), not normalised
    sem: float
    iqm: float  # of the normalised scores: the leaderboard's dataset tables
    iqm_sem: float  # standard error of the seeds left after the IQM's trim


@dataclass(frozen=True)
class GroupRow:
    encoder: str
    group: str  # a capability group (catalog.GROUPS) or ALL
    datasets: tuple[str, ...]
    missing: tuple[str, ...]  # the group's datasets this encoder has no scores for
    value: float | None  # mean of the bootstrap IQMs: the leaderboard's number
    sem: float | None  # standard error of the bootstrap IQMs: the leaderboard's error
    iqm: float | None  # IQM of all the group's normalised scores, no resampling
    ci95: tuple[float, float] | None  # 2.5/97.5 percentiles of the bootstrap IQMs


@dataclass(frozen=True)
class LeaderboardTable:
    datasets: tuple[DatasetRow, ...]
    groups: tuple[GroupRow, ...]

    def markdown(self) -> str:
        """The group rows as the leaderboard shows them: ×100, one decimal."""
        lines = ["| encoder | group | datasets | score | error | IQM | 95 % interval |",
                 "|---|---|---|---|---|---|---|"]
        for g in self.groups:
            if g.value is None or g.sem is None or g.iqm is None or g.ci95 is None:
                cells = [f"missing {', '.join(g.missing)}", "", "", ""]
            else:
                cells = [f"{100 * g.value:.1f}", f"{100 * g.sem:.1f}", f"{100 * g.iqm:.1f}",
                         f"{100 * g.ci95[0]:.1f}–{100 * g.ci95[1]:.1f}"]
            lines.append(f"| {g.encoder} | {g.group} | {len(g.datasets)} | "
                         f"{' | '.join(cells)} |")
        return "\n".join(lines)


def leaderboard_metric(dataset: str) -> str:
    """The metric the leaderboard scores ``dataset`` by."""
    return METRICS[_info(dataset).task]


def leaderboard_score(dataset: str, value: float) -> float:
    """The number the submission file records: BioMassters' RMSE as ``1 - RMSE * std``."""
    return 1.0 - value * BIOMASSTERS_STD if dataset == "biomassters" else value


def iqm(values: np.ndarray) -> float:
    """Interquartile mean as ``scipy.stats.trim_mean(values, 0.25)``: the sorted values
    less ``int(0.25 n)`` at each end."""
    kept = _trimmed(values)
    return float(np.mean(kept))


def aggregate(scores: Iterable[SeedScore], *, bounds: Mapping[str, Bounds] = LEADERBOARD_BOUNDS,
              required_seeds: int = REQUIRED_SEEDS,
              repeats: int = BOOTSTRAP_REPEATS) -> LeaderboardTable:
    """Normalised per-dataset IQMs and per-group bootstrap IQMs, as the leaderboard computes
    them, for every encoder in ``scores``."""
    strata = _strata(list(scores), bounds, required_seeds)
    dataset_rows = tuple(_dataset_row(e, d, raw, norm)
                         for (e, d), (raw, norm) in sorted(strata.items()))
    normalised = {key: norm for key, (_, norm) in strata.items()}
    present = sorted({d for _, d in strata})
    members = [(g, [d for d in DATASETS if g in _info(d).groups]) for g in GROUPS]
    group_rows = [row for group, datasets in [*members, (ALL, present)]
                  for row in _group_rows(group, datasets, normalised, repeats)]
    return LeaderboardTable(dataset_rows, tuple(group_rows))


def _info(dataset: str) -> DatasetInfo:
    if dataset not in DATASETS:
        raise LeaderboardError(f"dataset {dataset!r} is not a GEO-Bench-2 dataset "
                               f"({', '.join(DATASETS)})")
    return DATASETS[dataset]


def _strata(scores: Sequence[SeedScore], bounds: Mapping[str, Bounds],
            required_seeds: int) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """(encoder, dataset) → its leaderboard scores and their normalised values, by seed."""
    if not scores:
        raise LeaderboardError("no scores to aggregate")
    by_key: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for s in scores:
        _check(s, bounds)
        seeds = by_key[(s.encoder, s.dataset)]
        if s.seed in seeds:
            raise LeaderboardError(f"{s.encoder} on {s.dataset}: seed {s.seed} is scored twice")
        seeds[s.seed] = leaderboard_score(s.dataset, s.value)
    strata = {}
    for (encoder, dataset), seeds in sorted(by_key.items()):
        if len(seeds) != required_seeds:
            raise LeaderboardError(f"{encoder} on {dataset}: {len(seeds)} seeds, the "
                                   f"leaderboard needs exactly {required_seeds}")
        raw = np.array([seeds[k] for k in sorted(seeds)])
        strata[(encoder, dataset)] = (raw, bounds[dataset].normalise(raw))
    return strata


def _check(s: SeedScore, bounds: Mapping[str, Bounds]) -> None:
    where = f"{s.encoder} on {s.dataset} seed {s.seed}"
    expected = leaderboard_metric(s.dataset)
    if s.metric != expected:
        raise LeaderboardError(f"{where}: scored by {s.metric!r}, the leaderboard scores "
                               f"{s.dataset} by {expected!r}")
    if not math.isfinite(s.value):
        raise LeaderboardError(f"{where}: score {s.value} is not a finite number")
    if s.dataset not in bounds:
        raise LeaderboardError(f"{where}: no reference [low, high] for {s.dataset} to "
                               "normalise against; pass bounds that name it")


def _trimmed(values: np.ndarray) -> np.ndarray:
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    cut = int(TRIM * len(ordered))
    return ordered[cut:len(ordered) - cut]


def _sem(values: np.ndarray) -> float:
    """``scipy.stats.sem``: sample standard deviation over √n (NaN for one value)."""
    if len(values) < 2:
        return math.nan
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))


def _dataset_row(encoder: str, dataset: str, raw: np.ndarray, norm: np.ndarray) -> DatasetRow:
    return DatasetRow(encoder, dataset, leaderboard_metric(dataset), float(np.mean(raw)),
                      _sem(raw), iqm(norm), _sem(_trimmed(norm)))


def _group_rows(group: str, datasets: Sequence[str],
                normalised: Mapping[tuple[str, str], np.ndarray],
                repeats: int) -> list[GroupRow]:
    # Every stratum of the group's datasets draws, in sorted (encoder, dataset) order from
    # one generator per repetition, as pandas' groupby.sample does: an encoder's draws
    # depend on the strata sorted before it, exactly as on the leaderboard.
    keys = sorted(k for k in normalised if k[1] in datasets)
    encoders = sorted({e for e, _ in normalised})
    boots: dict[str, list[float]] = {e: [] for e in encoders}
    for i in range(repeats if keys else 0):
        rng = np.random.RandomState(BOOTSTRAP_SEED + i)
        drawn: dict[str, list[np.ndarray]] = defaultdict(list)
        for encoder, dataset in keys:
            values = normalised[(encoder, dataset)]
            drawn[encoder].append(values[rng.choice(len(values), size=len(values))])
        for encoder, parts in drawn.items():
            boots[encoder].append(iqm(np.concatenate(parts)))
    return [_group_row(group, tuple(datasets), e, boots[e], normalised) for e in encoders]


def _group_row(group: str, datasets: tuple[str, ...], encoder: str, boots: list[float],
               normalised: Mapping[tuple[str, str], np.ndarray]) -> GroupRow:
    missing = tuple(d for d in datasets if (encoder, d) not in normalised)
    if missing or not datasets:
        return GroupRow(encoder, group, datasets, missing, None, None, None, None)
    pooled = np.concatenate([normalised[(encoder, d)] for d in datasets])
    low, high = np.percentile(boots, [2.5, 97.5])
    return GroupRow(encoder, group, datasets, (), float(np.mean(boots)), _sem(np.array(boots)),
                    iqm(pooled), (float(low), float(high)))


# --- the submission file ------------------------------------------------------------------

# The leaderboard's NEW_SUBMISSION_COLUMN_NAMES, in its order: the columns its validator
# requires and the only ones it keeps.
SUBMISSION_COLUMNS = (
    "dataset", "Metric", "experiment_name", "partition name", "backbone", "decoder",
    "batch_size_selection", "frozen_or_full_ft", "early_stop_patience", "n_trials", "Seed",
    "data_percentages", "batch_size", "weight_decay", "lr", "test metric")
SUBMISSION_FILE = "results_and_parameters.csv"


@dataclass(frozen=True)
class RunParams:
    """How an encoder's scores on a dataset were made, as the submission file records it.
    A parameter that does not apply (a kNN's learning rate) is None: an empty cell."""

    decoder: str  # "knn", "logistic", "linear", "UNet" …
    frozen_or_full_ft: str  # "frozen" or "full_ft"
    batch_size_selection: str = "fixed"  # "fixed" or "optimized"
    early_stop_patience: int | None = None
    n_trials: int = 0  # hyperparameter trials; 0: none
    batch_size: int | None = None
    weight_decay: float | None = None
    lr: float | None = None
    data_percentages: int = 100


def write_submission(path: Path, scores: Sequence[SeedScore],
                     params: Mapping[tuple[str, str], RunParams]) -> Path:
    """Write ``results_and_parameters.csv`` for ``scores``, one row per seed, with the
    parameters of each (encoder, dataset) from ``params``; the checks are the leaderboard's
    validator's (exactly 5 seeds each, one of frozen/full_ft, a whole capability group)."""
    if problems := submission_problems(scores, params):
        raise LeaderboardError(problems[0])
    path.write_text(submission_csv(scores, params), newline="")
    return path


def submission_problems(scores: Sequence[SeedScore],
                        params: Mapping[tuple[str, str], RunParams]) -> list[str]:
    """What the leaderboard's validator would refuse in a file of ``scores``: a seed count
    other than ``REQUIRED_SEEDS``, frozen and full fine-tuning rows together, datasets
    that complete no capability group (empty: it would take the file)."""
    counts = _seed_counts(scores)
    problems = [f"{e} on {d}: {n} seeds, the leaderboard needs exactly {REQUIRED_SEEDS}"
                for (e, d), n in sorted(counts.items()) if n != REQUIRED_SEEDS]
    modes = {_params(params, key).frozen_or_full_ft for key in sorted(counts)}
    if not modes <= {"frozen", "full_ft"} or len(modes) != 1:
        problems.append(f"frozen_or_full_ft is {sorted(modes)}: one submission holds only "
                        "'frozen' or only 'full_ft' rows")
    present = {d for _, d in counts}
    if not any(set(members) <= present for members in _group_members().values()):
        problems.append(f"datasets {sorted(present)} complete no capability group; the "
                        "leaderboard takes a submission with at least one")
    return problems


def submission_csv(scores: Sequence[SeedScore],
                   params: Mapping[tuple[str, str], RunParams]) -> str:
    """The rows of ``results_and_parameters.csv`` (see ``write_submission``), whatever
    ``submission_problems`` says: each (encoder, dataset) must still have one metric, the
    leaderboard's, finite scores, distinct seeds and the same seed count as the others."""
    counts = set(_seed_counts(scores).values())
    if len(counts) > 1:
        raise LeaderboardError(f"seed counts {sorted(counts)} differ between datasets; "
                               "score every dataset with the same seeds")
    _strata(scores, LEADERBOARD_BOUNDS, counts.pop() if counts else REQUIRED_SEEDS)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(SUBMISSION_COLUMNS)
    for s in sorted(scores, key=lambda s: (s.encoder, s.dataset, s.seed)):
        writer.writerow(_cells(s, _params(params, (s.encoder, s.dataset))))
    return out.getvalue()


def _seed_counts(scores: Sequence[SeedScore]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for s in scores:
        counts[(s.encoder, s.dataset)] += 1
    return dict(counts)


def _params(params: Mapping[tuple[str, str], RunParams], key: tuple[str, str]) -> RunParams:
    if key not in params:
        raise LeaderboardError(f"{key[0]} on {key[1]}: no RunParams for its rows")
    return params[key]


def _group_members() -> dict[str, list[str]]:
    return {g: [d for d in DATASETS if g in DATASETS[d].groups] for g in GROUPS}


def _number(v: float | None) -> str:
    return "" if v is None else repr(v)


def _cells(s: SeedScore, p: RunParams) -> list[str]:
    partition = f"{p.data_percentages / 100:.2f}x train"
    return [s.dataset, leaderboard_metric(s.dataset), f"mpmae_{s.encoder}_{p.decoder}",
            partition, s.encoder, p.decoder, p.batch_size_selection, p.frozen_or_full_ft,
            _number(p.early_stop_patience), _number(p.n_trials), _number(s.seed),
            _number(p.data_percentages), _number(p.batch_size), _number(p.weight_decay),
            _number(p.lr), repr(leaderboard_score(s.dataset, s.value))]
