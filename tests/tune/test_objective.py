"""A sweep whose objective is a GEO-Bench dataset's kNN or logistic score: checked before
any cluster work, scored by ``mpmae evaluate``'s code in each finished trial, and ranking
the trials."""

from __future__ import annotations

import csv
import json
import math
import shutil

import mlflow
import pytest

from mpmae.cli import main
from mpmae.data.geobench.writer import write_partition
from mpmae.tune.sweep import sweep

LANDSCAPE = "downstream/synth-landscape/knn/default/accuracy"
# The converged probe's scores have a metric of their own, never MMEarth's linear recipe's.
LANDSCAPE_LOGISTIC = "downstream/synth-landscape/logistic/default/accuracy"


@pytest.mark.parametrize(("dataset", "setting", "message"), [
    ("missing", "", "is not a folder"),
    ("", "", "task_specs.pkl not found"),  # the world's folder: tiles, not GEO-Bench
    ("geobench/synth-landcover", "", "segmentation dataset"),
    ("geobench/synth-landscape", "objective.partition=0.33x_train",
     "0.33x_train_partition.json not found"),
])
def test_a_bad_objective_fails_in_one_line_before_any_cluster_work(
        sweep_args, small_world, tmp_path, capsys, dataset, setting, message):
    sets = [*sweep_args, f"objective.dataset={small_world / dataset}", *filter(None, [setting])]

    assert main(["tune", *(arg for item in sets for arg in ("--set", item))]) == 2

    err = capsys.readouterr().err
    assert err.startswith("mpmae: error: objective.dataset: ") and message in err
    assert err.count("\n") == 1
    assert not (tmp_path / "runs" / "s").exists()  # no sweep folder, no MLflow run, no Ray


def test_an_unknown_protocol_is_one_line_naming_the_field_and_the_choices(sweep_args,
                                                                         tmp_path, capsys):
    sets = [*sweep_args, "objective.protocol=svm"]

    assert main(["tune", *(arg for item in sets for arg in ("--set", item))]) == 2

    err = capsys.readouterr().err
    assert err.startswith("mpmae: error: objective.protocol: must be one of 'knn', 'linear', "
                          "'logistic'; got 'svm'") and err.count("\n") == 1
    assert not (tmp_path / "runs" / "s").exists()


def test_a_logistic_objective_on_a_partition_without_valid_samples_fails_before_the_sweep(
        sweep_args, small_world, tmp_path, capsys):
    dataset = tmp_path / "synth-landscape"
    shutil.copytree(small_world / "geobench" / "synth-landscape", dataset)
    train = json.loads((dataset / "default_partition.json").read_text())["train"]
    write_partition(dataset, "no-valid", {"train": train, "valid": [], "test": []})
    sets = [*sweep_args, f"objective.dataset={dataset}", "objective.protocol=logistic",
            "objective.partition=no-valid"]

    assert main(["tune", *(arg for item in sets for arg in ("--set", item))]) == 2

    err = capsys.readouterr().err
    assert err.startswith("mpmae: error: objective.dataset: ") and err.count("\n") == 1
    assert "partition no-valid has no valid samples" in err and "logistic" in err
    assert not (tmp_path / "runs" / "s").exists()


@pytest.mark.ray
def test_finished_trials_are_ranked_by_their_geobench_score(ray_local, tiny_sweep,
                                                            sweep_runs, small_world,
                                                            tmp_path):
    cfg = tiny_sweep(f"objective.dataset={small_world / 'geobench' / 'synth-landscape'}",
                     "objective.knn.k=5", "scheduler.kind=none")
    result = sweep(cfg, progress=lambda _: None)

    assert result.objective == LANDSCAPE
    assert len(result.rows) == 2 and all(r["status"] == "completed" for r in result.rows)
    for row in result.rows:
        assert row["objective"] == LANDSCAPE and 0 <= row["objective_value"] <= 1
        recorded = json.loads((tmp_path / "runs" / "s" / "trials" / row["trial_id"] /
                               "objective.json").read_text())
        assert recorded["value"] == row["objective_value"]
        lo, hi = recorded["ci95"]
        assert lo <= row["objective_value"] <= hi
    best = max(result.rows, key=lambda r: r["objective_value"])
    assert result.best["trial_id"] == best["trial_id"]

    client, [parent], trials = sweep_runs(cfg)
    assert parent.data.tags["mpmae.objective"] == LANDSCAPE
    assert parent.data.metrics["best_objective"] == best["objective_value"]
    assert parent.data.tags["mpmae.best_trial"] == best["trial_id"]
    for run in trials:  # evaluate linked its score to each trial's run
        row = next(r for r in result.rows if r["mlflow_run_id"] == run.info.run_id)
        assert math.isclose(run.data.metrics[LANDSCAPE], row["objective_value"])
        assert run.data.tags["mpmae.evaluation_run_id"]
    evaluations = client.search_runs(
        [client.get_experiment_by_name("mpmae-evaluate").experiment_id])
    assert {r.data.tags["mpmae.encoder"] for r in evaluations  # one per trial's encoder
            if "mlflow.parentRunId" not in r.data.tags} == {r["trial_id"] for r in result.rows}
    table = client.download_artifacts(result.mlflow_run_id, "results/trials.csv",
                                      str(tmp_path))
    with open(table) as f:
        assert {(r["objective"], float(r["objective_value"])) for r in csv.DictReader(f)} == {
            (LANDSCAPE, r["objective_value"]) for r in result.rows}
    version = client.get_model_version("mpmae-encoder", result.model_version)
    assert version.tags["mpmae.pretext"] == best["pretext"]
    mlflow.set_tracking_uri(None)


@pytest.mark.ray
def test_a_logistic_objective_ranks_trials_under_its_own_metric(ray_local, tiny_sweep,
                                                                sweep_runs, small_world,
                                                                tmp_path):
    cfg = tiny_sweep(f"objective.dataset={small_world / 'geobench' / 'synth-landscape'}",
                     "objective.protocol=logistic", "objective.logistic.l2_steps=3",
                     "search.pretext=[S2]", "scheduler.kind=none")
    result = sweep(cfg, progress=lambda _: None)

    assert result.objective == LANDSCAPE_LOGISTIC
    [row] = result.rows
    assert row["status"] == "completed" and 0 <= row["objective_value"] <= 1
    recorded = json.loads((tmp_path / "runs" / "s" / "trials" / row["trial_id"] /
                           "objective.json").read_text())
    assert recorded["name"] == LANDSCAPE_LOGISTIC and recorded["recipe"] == "lbfgs-logistic"
    assert recorded["value"] == row["objective_value"] == result.best["objective_value"]

    client, [parent], [trial] = sweep_runs(cfg)
    assert parent.data.tags["mpmae.objective"] == LANDSCAPE_LOGISTIC
    downstream = {k for k in trial.data.metrics if k.startswith("downstream/")}
    assert downstream == {LANDSCAPE_LOGISTIC}  # nothing under the linear recipe's name
    evaluations = client.search_runs(
        [client.get_experiment_by_name("mpmae-evaluate").experiment_id])
    [evaluation] = [r for r in evaluations if "mlflow.parentRunId" not in r.data.tags]
    assert evaluation.data.params["logistic.l2_steps"] == "3"  # the objective's recipe
    [cell] = [r for r in evaluations if "mlflow.parentRunId" in r.data.tags]
    assert cell.info.run_name == "synth-landscape-logistic-default"
    assert cell.data.params["recipe"] == "lbfgs-logistic"
    mlflow.set_tracking_uri(None)


@pytest.mark.parametrize(("dataset", "partition", "expected"), [
    ("benv2", "default", "downstream/benv2/knn/default/f1_macro"),
    ("so2sat", "default", "downstream/so2sat/knn/default/accuracy"),
    ("cloudsen12", "default", "segmentation dataset"),
    ("so2sat", "0.10x_train", "GEO-Bench-2 has no partition '0.10x_train'"),
])
def test_a_geobench2_dataset_can_be_the_objective(tmp_path, dataset, partition, expected):
    """Its leaderboard's metric names the objective (macro F1 for benv2); what it cannot
    score is a ConfigError on objective.dataset before any cluster work."""
    from mpmae.config import ConfigError
    from mpmae.data.sources.synth_geobench2 import write_geobench2_sets
    from mpmae.modalities import S2_INPUT_BANDS
    from mpmae.tune.objective import ObjectiveConfig, objective_name

    write_geobench2_sets(tmp_path, tiles=24, size=8, seed=1, progress=lambda _: None)
    cfg = ObjectiveConfig(dataset=str(tmp_path / dataset), partition=partition)
    if expected.startswith("downstream/"):
        assert objective_name(cfg, [S2_INPUT_BANDS]) == expected
    else:
        with pytest.raises(ConfigError, match=expected) as error:
            objective_name(cfg, [S2_INPUT_BANDS])
        assert error.value.key == "objective.dataset"


@pytest.mark.ray
def test_a_sweep_is_scored_on_a_geobench2_dataset(ray_local, tiny_sweep, tmp_path):
    gb2 = tmp_path / "gb2"
    assert main(["data", "synth-geobench2", str(gb2), "--tiles", "60", "--size", "16"]) == 0
    cfg = tiny_sweep(f"objective.dataset={gb2 / 'benv2'}", "search.pretext=[S2]",
                     "scheduler.kind=none")
    result = sweep(cfg, progress=lambda _: None)

    name = "downstream/benv2/knn/default/f1_macro"  # the leaderboard's multi-label metric
    assert result.objective == name
    [row] = result.rows
    assert row["status"] == "completed" and 0 <= row["objective_value"] <= 1
    recorded = json.loads((tmp_path / "runs" / "s" / "trials" / row["trial_id"] /
                           "objective.json").read_text())
    assert recorded["name"] == name and recorded["value"] == row["objective_value"]
