"""GEO-Bench-2's leaderboard arithmetic on hand-made scores: normalisation, IQMs, the
stratified bootstrap (checked against pandas' groupby.sample and scipy, which the
leaderboard itself runs), BioMassters' flipped RMSE, the submission file, bad input."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import sem, trim_mean

from mpmae.evaluate.reports.geobench2_leaderboard import (
    ALL,
    LEADERBOARD_BOUNDS,
    LeaderboardError,
    RunParams,
    SeedScore,
    aggregate,
    iqm,
    leaderboard_metric,
    write_submission,
)

CLASSIFICATION = ("so2sat", "forestnet", "benv2", "treesatai")
SO2SAT_LOW, SO2SAT_HIGH = 0.5111562013626099, 0.6541582345962524  # the leaderboard's file


def scores(encoder: str, dataset: str, values) -> list[SeedScore]:
    return [SeedScore(encoder, dataset, seed, leaderboard_metric(dataset), float(v))
            for seed, v in enumerate(values)]


def classification(encoder: str, shift: float = 0.0, n: int = 5) -> list[SeedScore]:
    rows = []
    for k, dataset in enumerate(CLASSIFICATION):
        low, high = LEADERBOARD_BOUNDS[dataset]
        spread = np.linspace(0.2, 0.8, n) + 0.05 * k + shift
        rows += scores(encoder, dataset, low + spread * (high - low))
    return rows


def test_iqm_of_known_lists() -> None:
    assert iqm(np.array([100.0, 2, 3, 1, 4])) == 3.0  # int(1.25) = 1 cut at each end
    assert iqm(np.arange(8.0)) == 3.5  # 2 cut at each end: mean of 2, 3, 4, 5
    assert iqm(np.array([1.0, 2, 9])) == 4.0  # int(0.75) = 0: nothing cut


def test_dataset_row_normalises_against_the_leaderboard_bounds() -> None:
    values = [0.60, 0.55, 0.58, 0.70, 0.50]
    table = aggregate(scores("enc", "so2sat", values))
    (row,) = table.datasets
    normalised = sorted((v - SO2SAT_LOW) / (SO2SAT_HIGH - SO2SAT_LOW) for v in values)
    middle = normalised[1:4]
    assert row.metric == "Overall_Accuracy"
    assert row.iqm == pytest.approx(sum(middle) / 3, abs=1e-12)
    assert row.iqm_sem == pytest.approx(np.std(middle, ddof=1) / math.sqrt(3), abs=1e-12)
    assert row.mean == pytest.approx(sum(values) / 5, abs=1e-12)
    assert normalised[-1] > 1  # not clipped: 0.70 lies above the reference maximum


def test_biomassters_rmse_is_flipped_before_normalising(tmp_path: Path) -> None:
    rmse = [0.16, 0.18, 0.20, 0.17, 0.19]
    (row,) = aggregate(scores("enc", "biomassters", rmse)).datasets
    flipped = [1 - r * 0.2537951171398163 for r in rmse]
    assert row.metric == "RMSE"
    assert row.mean == pytest.approx(sum(flipped) / 5, abs=1e-12)
    low, high = LEADERBOARD_BOUNDS["biomassters"]
    assert row.iqm == pytest.approx((np.mean(sorted(flipped)[1:4]) - low) / (high - low),
                                    abs=1e-12)
    better = aggregate(scores("enc", "biomassters", [r - 0.05 for r in rmse])).datasets[0]
    assert better.iqm > row.iqm  # a lower RMSE scores higher


def test_group_bootstrap_matches_pandas_and_scipy() -> None:
    rows = classification("a") + classification("b", shift=0.1)
    rows[3] = SeedScore("a", "so2sat", 3, "Overall_Accuracy", 0.40)  # an outlier seed
    table = aggregate(rows)
    # The leaderboard's procedure, written with the libraries it uses.
    frame = pd.DataFrame([{"backbone": s.encoder, "dataset": s.dataset, "seed": s.seed,
                           "score": LEADERBOARD_BOUNDS[s.dataset].normalise(s.value)}
                          for s in rows])
    strata = frame.groupby(["backbone", "dataset"])
    boots = pd.concat([strata.sample(frac=1, replace=True, random_state=100 + i)
                       .groupby("backbone")["score"].apply(trim_mean, proportiontocut=0.25)
                       for i in range(100)], axis=1)
    for encoder in ("a", "b"):
        (group,) = [g for g in table.groups
                    if g.group == "Classification" and g.encoder == encoder]
        assert group.datasets == CLASSIFICATION and group.missing == ()
        assert group.value == pytest.approx(boots.loc[encoder].mean(), abs=1e-12)
        assert group.sem == pytest.approx(sem(boots.loc[encoder]), abs=1e-12)
        pooled = frame.loc[frame.backbone == encoder, "score"]
        assert group.iqm == pytest.approx(trim_mean(pooled, 0.25), abs=1e-12)
        assert group.ci95 == pytest.approx(tuple(np.percentile(boots.loc[encoder],
                                                                [2.5, 97.5])), abs=1e-12)
        (everything,) = [g for g in table.groups if g.group == ALL and g.encoder == encoder]
        assert everything.value == group.value  # the same four datasets
    assert table.markdown().count("| Classification |") == 2


def test_interval_holds_the_estimate_and_shrinks_with_more_seeds() -> None:
    widths = []
    for n in (5, 40):
        (group,) = [g for g in aggregate(classification("a", n=n), required_seeds=n).groups
                    if g.group == "Classification"]
        assert group.ci95[0] <= group.iqm <= group.ci95[1]
        assert group.ci95[0] <= group.value <= group.ci95[1]
        widths.append((group.ci95[1] - group.ci95[0], group.sem))
    assert widths[1][0] < widths[0][0] / 2 and widths[1][1] < widths[0][1] / 2


def test_an_encoder_missing_a_dataset_gets_no_group_value() -> None:
    rows = classification("a") + [s for s in classification("b") if s.dataset != "treesatai"]
    groups = {(g.encoder, g.group): g for g in aggregate(rows).groups}
    assert groups[("b", "Classification")].value is None
    assert groups[("b", "Classification")].missing == ("treesatai",)
    assert groups[("b", ALL)].missing == ("treesatai",)
    assert groups[("a", "Classification")].value is not None
    core = groups[("a", "Core")]
    assert core.value is None and "biomassters" in core.missing and "benv2" not in core.missing


@pytest.mark.parametrize(("bad", "message"), [
    (lambda r: r[:-1], "enc on treesatai: 4 seeds, the leaderboard needs exactly 5"),
    (lambda r: [*r, SeedScore("enc", "eurosat", 0, "Overall_Accuracy", 0.5)],
     "dataset 'eurosat' is not a GEO-Bench-2 dataset"),
    (lambda r: [SeedScore("enc", "so2sat", 0, "Overall_Accuracy", math.nan), *r[1:]],
     "enc on so2sat seed 0: score nan is not a finite number"),
    (lambda r: [SeedScore("enc", "benv2", 0, "f1_micro", 0.5), *r],
     "enc on benv2 seed 0: scored by 'f1_micro', the leaderboard scores benv2 by "
     "'Multilabel_F1_Score'"),
    (lambda r: [*r, r[0]], "enc on so2sat: seed 0 is scored twice"),
])
def test_bad_input_is_one_line_naming_it(bad, message: str) -> None:
    with pytest.raises(LeaderboardError) as info:
        aggregate(bad(classification("enc")))
    assert message in str(info.value) and "\n" not in str(info.value)


# The leaderboard's utils/constants.py NEW_SUBMISSION_COLUMN_INFO, written out here.
STRING = ["dataset", "Metric", "experiment_name", "partition name", "backbone", "decoder",
          "batch_size_selection", "frozen_or_full_ft"]
INTEGER = ["early_stop_patience", "n_trials", "Seed", "data_percentages", "batch_size"]
FLOAT = ["weight_decay", "lr", "test metric"]


def test_submission_file_has_the_leaderboards_columns(tmp_path: Path) -> None:
    rows = classification("mmearth_atto") + scores("mmearth_atto", "biomassters",
                                                   [0.2, 0.1, 0.3, 0.15, 0.25])
    linear = RunParams("linear", "frozen", n_trials=0, batch_size=1024, weight_decay=0.3,
                       lr=1e-4, early_stop_patience=None)
    params = {(s.encoder, s.dataset): linear for s in rows}
    path = write_submission(tmp_path / "results_and_parameters.csv", rows, params)
    with path.open(newline="") as f:
        lines = list(csv.reader(f))
    assert lines[0] == STRING + INTEGER + FLOAT
    assert len(lines) == 1 + 25
    rows_read = [dict(zip(lines[0], line, strict=True)) for line in lines[1:]]
    assert [r["dataset"] for r in rows_read[::5]] == ["benv2", "biomassters", "forestnet",
                                                      "so2sat", "treesatai"]
    biomassters = rows_read[5]
    assert biomassters == {
        "dataset": "biomassters", "Metric": "RMSE", "experiment_name": "mpmae_mmearth_atto_linear",
        "partition name": "1.00x train", "backbone": "mmearth_atto", "decoder": "linear",
        "batch_size_selection": "fixed", "frozen_or_full_ft": "frozen",
        "early_stop_patience": "", "n_trials": "0", "Seed": "0", "data_percentages": "100",
        "batch_size": "1024", "weight_decay": "0.3", "lr": "0.0001",
        "test metric": repr(1 - 0.2 * 0.2537951171398163)}
    # What the leaderboard's validator checks of the types, with pandas as it reads them
    # (its pandas 2.2 reads text as object; pandas 3 as its string dtype).
    frame = pd.read_csv(path)
    assert all(pd.api.types.is_string_dtype(frame[c]) for c in STRING)
    assert all(pd.api.types.is_numeric_dtype(frame[c]) for c in INTEGER + FLOAT)
    assert set(frame.groupby(["backbone", "dataset"])["test metric"].count()) == {5}


def test_submission_refuses_what_the_leaderboard_would(tmp_path: Path) -> None:
    rows = classification("enc")
    frozen, tuned = RunParams("knn", "frozen"), RunParams("UNet", "full_ft")
    mixed = {(s.encoder, s.dataset): frozen if s.dataset == "benv2" else tuned for s in rows}
    with pytest.raises(LeaderboardError, match="only 'frozen' or only 'full_ft'"):
        write_submission(tmp_path / "a.csv", rows, mixed)
    partial = [s for s in rows if s.dataset != "forestnet"]
    with pytest.raises(LeaderboardError, match="complete no capability group"):
        write_submission(tmp_path / "b.csv", partial, {(s.encoder, s.dataset): frozen
                                                       for s in partial})
    with pytest.raises(LeaderboardError, match="enc on benv2: no RunParams"):
        write_submission(tmp_path / "c.csv", rows, {})
    assert not any(tmp_path.iterdir())
