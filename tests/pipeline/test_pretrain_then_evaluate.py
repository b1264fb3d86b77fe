"""``mpmae pretrain`` with ``eval.datasets``: a tiny run on a real local Ray, then its final
encoder scored by ``mpmae evaluate``'s code; the scores land on the pretraining run, under
a metric that names the protocol (MMEarth's linear recipe and the converged logistic probe
never share one). The eval section is checked before any training."""

from __future__ import annotations

import json
import shutil

import pytest

from mpmae.cli import main
from mpmae.data.geobench.writer import write_partition
from mpmae.pipeline.pretrain import pretrain

LANDSCAPE = "downstream/synth-landscape/{}/default/accuracy"


@pytest.mark.ray
def test_eval_datasets_score_the_final_encoder_on_its_pretraining_run(ray_local, tiny_config,
                                                                       small_world,
                                                                       mlflow_runs):
    cfg = tiny_config(f"eval.datasets=[{small_world / 'geobench'}]", "train.figure_every=0")
    said: list[str] = []
    result = pretrain(cfg, progress=said.append)
    client, _ = mlflow_runs(cfg)
    metrics = client.get_run(result.mlflow_run_id).data.metrics
    assert LANDSCAPE.format("knn") in metrics
    assert said[-1].startswith(f"done: run {result.run_name}")  # the summary comes last


@pytest.mark.ray
def test_eval_protocol_logistic_scores_under_its_own_metric(ray_local, tiny_config,
                                                            small_world, mlflow_runs):
    cfg = tiny_config(f"eval.datasets=[{small_world / 'geobench'}]", "eval.protocol=logistic",
                      "train.figure_every=0")
    said: list[str] = []
    result = pretrain(cfg, progress=said.append)

    client, _ = mlflow_runs(cfg)
    metrics = client.get_run(result.mlflow_run_id).data.metrics
    # The benchmark folder's segmentation set is skipped: the probe scores pooled embeddings.
    assert {k for k in metrics if k.startswith("downstream/")} == {
        LANDSCAPE.format("logistic")}
    assert any(line.startswith("skipping synth-landcover") for line in said)
    evaluations = client.search_runs(
        [client.get_experiment_by_name("mpmae-evaluate").experiment_id])
    [cell] = [r for r in evaluations if "mlflow.parentRunId" in r.data.tags]
    assert cell.info.run_name == "synth-landscape-logistic-default"
    assert cell.data.params["recipe"] == "lbfgs-logistic"
    assert "recipe.l2" in cell.data.params and said[-1].startswith("done: run")


def _no_valid_copy(small_world, tmp_path):
    dataset = tmp_path / "synth-landscape"
    shutil.copytree(small_world / "geobench" / "synth-landscape", dataset)
    train = json.loads((dataset / "default_partition.json").read_text())["train"]
    write_partition(dataset, "default", {"train": train, "valid": [], "test": train})
    return dataset


@pytest.mark.parametrize(("case", "expected"), [
    ("unknown", "eval.protocol: must be one of 'knn', 'linear', 'logistic'; got 'svm'"),
    ("no-valid", "eval.protocol: synth-landscape: partition default has no valid samples"),
    ("segmentation", "eval.protocol: synth-landcover is a segmentation dataset, which kNN "
                     "does not score"),
    ("missing", "eval.datasets: "),
])
def test_a_bad_eval_section_is_one_line_before_any_training(case, expected, small_world,
                                                           tmp_path, mpmae_home, tiny_args,
                                                           capsys):
    dataset = {"unknown": small_world / "geobench",
               "no-valid": tmp_path / "synth-landscape",
               "segmentation": small_world / "geobench" / "synth-landcover",
               "missing": tmp_path / "nowhere"}[case]
    if case == "no-valid":
        _no_valid_copy(small_world, tmp_path)
    protocol = {"unknown": "svm", "no-valid": "logistic"}.get(case, "knn")
    sets = [f"data.uri={small_world}", f"storage.root={tmp_path / 'runs'}",
            f"eval.datasets=[{dataset}]", f"eval.protocol={protocol}", "run_name=t"]

    assert main(["pretrain", *tiny_args, *(a for s in sets for a in ("--set", s))]) == 2

    err = capsys.readouterr().err
    assert err.startswith(f"mpmae: error: {expected}") and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()  # no run folder: nothing was trained
