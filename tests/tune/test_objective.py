"""A sweep whose objective is a GEO-Bench dataset's kNN score: checked before any cluster
work, scored by ``mpmae evaluate``'s code in each finished trial, and ranking the trials."""

from __future__ import annotations

import csv
import json
import math

import mlflow
import pytest

from mpmae.cli import main
from mpmae.config import ConfigError
from mpmae.tune.sweep import sweep

LANDSCAPE = "downstream/synth-landscape/knn/default/accuracy"


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


def test_an_unknown_protocol_is_refused_when_the_config_loads(tiny_sweep):
    with pytest.raises(ConfigError, match=r"objective\.protocol: must be one of 'knn', 'linear'"):
        tiny_sweep("objective.protocol=svm")


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
