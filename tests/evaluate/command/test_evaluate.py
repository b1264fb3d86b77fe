"""``mpmae evaluate`` end to end: the real CLI, a real local Ray, MLflow in SQLite, and
GEO-Bench-layout datasets written in code."""

from __future__ import annotations

import json

import mlflow
import pytest
from geobench_layout import (
    CallsOnLoad,
    bigearthnet_like,
    eurosat_like,
    segmentation_like,
    so2sat_like,
)

from mpmae.cli import main
from mpmae.data.geobench.writer import (
    dumps,
    write_partition,
)
from mpmae.evaluate.config import LogisticConfig
from mpmae.evaluate.protocols.logistic import l2_grid
from mpmae.modalities import S2_INPUT_BANDS
from mpmae.model import build_encoder, save_encoder
from mpmae.storage import resolve

pytestmark = pytest.mark.ray

QUICK = ["--set", "linear.epochs=3", "--set", "mlflow.system_metrics=false"]


def _runs(uri: str, experiment: str = "mpmae-evaluate"):
    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return client, client.search_runs([found.experiment_id])


def test_linear_probe_over_a_benchmark_folder(ray_local, tmp_path, tracking, capsys):
    bench = tmp_path / "bench"
    for write in (eurosat_like, so2sat_like, bigearthnet_like):
        write(bench)
    out = tmp_path / "results.json"
    rc = main(["evaluate", "random:atto", str(bench), "--partition", "default",
               "--partition", "0.20x_train", "--seeds", "2", "--results", str(out), *QUICK])
    assert rc == 0
    rows = json.loads(out.read_text())["results"]
    assert len(rows) == 3 * 2 * 2
    assert {r["dataset"] for r in rows} == {"m-eurosat", "m-so2sat", "m-bigearthnet"}
    for row in rows:
        assert set(row) >= {"encoder", "dataset", "protocol", "partition", "seed", "metric",
                            "value", "ci95", "n_train", "n_test", "bands_filled"}
        assert row["ci95"][0] <= row["value"] <= row["ci95"][1]
        assert row["metric"] == ("f1_micro" if row["dataset"] == "m-bigearthnet" else "accuracy")
        assert row["bands_filled"] == ({"B1": "B2", "B9": "B8A"}
                                       if row["dataset"] == "m-so2sat" else {})
        assert row["n_train"] == (2 if row["partition"] == "0.20x_train" else 10)
        # MMEarth's recipe on a split smaller than its batch: one step an epoch
        assert row["recipe"] == "mmearth-linear" and row["details"]["steps"] == 3
        assert row["normalisation"] == ("dataset band_stats.json x 0.0001"
                                        if row["dataset"] == "m-so2sat"
                                        else "dataset band_stats.json")
    console = capsys.readouterr().out
    assert "filled as MMEarth does: B1 ← B2, B9 ← B8A" in console
    assert "m-so2sat: normalised with dataset band_stats.json x 0.0001" in console
    assert "m-eurosat" in console and "random:atto / linear / 0.20x_train" in console
    client, runs = _runs(tracking)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 3 * 2
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id, "results")}
    assert {"results/results.json", "results/results.csv", "results/scores.png",
            "results/label_efficiency.png"} <= artifacts  # two partitions: 20 % and 100 %
    assert all(c.data.metrics.keys() >= {"accuracy", "accuracy_ci95_low"} or
               "f1_micro" in c.data.metrics for c in children)


def test_knn_on_a_run_name_links_the_scores_to_its_pretraining_run(ray_local, tmp_path,
                                                                    tracking):
    mlflow.set_tracking_uri(tracking)
    pretraining = mlflow.MlflowClient().create_run(
        mlflow.MlflowClient().create_experiment("pretrain")).info.run_id
    run_dir = tmp_path / "runs" / "demo-1"
    save_encoder(build_encoder("atto"), run_dir / "encoder",
                 metadata={"input_bands": list(S2_INPUT_BANDS),
                           "normalisation": {"l1c": {"mean": [1000.0] * 11 + [500.0],
                                                     "std": [400.0] * 12}}})
    (run_dir / "run.json").write_text(json.dumps({"mlflow_run_id": pretraining}))
    eurosat_like(tmp_path / "bench")
    rc = main(["evaluate", "demo-1", str(tmp_path / "bench" / "m-eurosat"), "--protocol", "knn",
               "--set", f"storage.root={tmp_path / 'runs'}", "--set", "normalise=encoder",
               *QUICK])
    assert rc == 0
    run = mlflow.MlflowClient().get_run(pretraining)
    assert "downstream/m-eurosat/knn/default/accuracy" in run.data.metrics
    assert run.data.tags["mpmae.evaluation_run_id"]
    _, runs = _runs(tracking)
    assert [r for r in runs if r.data.tags.get("mpmae.encoder_run_id") == pretraining]


def test_a_hostile_dataset_runs_nothing_and_fails_in_one_line(ray_local, tmp_path, tracking,
                                                              capsys):
    folder = eurosat_like(tmp_path)
    marker = tmp_path / "pwned"
    import os

    (folder / "task_specs.pkl").write_bytes(dumps(CallsOnLoad(os.system, f"touch {marker}")))
    assert main(["evaluate", "random:atto", str(folder), *QUICK]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mpmae: error:") and "task_specs.pkl" in err and "\n" not in err
    assert not marker.exists()


def test_the_logistic_probe_runs_end_to_end_and_its_rows_carry_the_recipe(
        ray_local, tmp_path, tracking, capsys):
    bench = tmp_path / "bench"
    for write in (eurosat_like, bigearthnet_like):
        write(bench)
    out = tmp_path / "logistic.json"
    rc = main(["evaluate", "random:atto", str(bench), "--protocol", "logistic", "--partition",
               "default", "--partition", "0.20x_train", "--seeds", "3", "--results", str(out),
               "--set", "logistic.l2_steps=3", *QUICK])
    assert rc == 0
    rows = json.loads(out.read_text())["results"]
    assert len(rows) == 2 * 2  # a row per (dataset, partition): the fit has no seed
    for row in rows:
        assert row["protocol"] == "logistic" and 0 <= row["value"] <= 1
        assert row["recipe"] == {"m-eurosat": "lbfgs-logistic",
                                 "m-bigearthnet": "lbfgs-logistic-ovr"}[row["dataset"]]
        details = row["details"]
        assert details["l2"] in l2_grid(LogisticConfig(l2_steps=3))
        assert details["iterations"] >= 0 and isinstance(details["converged"], bool)
        assert details["fit_on"] == "train" and details["n_valid"] == 3
    assert "recipe logistic: lbfgs-logistic" in capsys.readouterr().out
    _, runs = _runs(tracking)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2 * 2
    assert all(c.data.params["recipe"].startswith("lbfgs-logistic")
               and "recipe.l2" in c.data.params for c in children)


@pytest.mark.parametrize("case", ["segmentation", "logistic-segmentation", "no-valid",
                                  "partition", "encoder", "size"])
def test_bad_input_is_one_line_naming_what_to_fix(case, ray_local, tmp_path, tracking, capsys):
    folder = eurosat_like(tmp_path)
    args = ["evaluate", "random:atto", str(folder), *QUICK]
    expected = {"segmentation": "kNN does not score",
                "logistic-segmentation": "the logistic probe does not score",
                "no-valid": "partition no-valid has no valid samples",
                "partition": "0.05x_train", "encoder": "no-such-run",
                "size": "random:huge"}[case]
    if case.endswith("segmentation"):
        protocol = "logistic" if case.startswith("logistic") else "knn"
        args[2:3] = [str(segmentation_like(tmp_path)), "--protocol", protocol]
    elif case == "no-valid":
        write_partition(folder, "no-valid", {"train": ["s0000"], "test": ["s0010"]})
        args += ["--protocol", "logistic", "--partition", "no-valid"]
    elif case == "partition":
        args += ["--partition", "0.05x_train"]
    elif case == "encoder":
        args[1] = "no-such-run"
    else:
        args[1] = "random:huge"
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mpmae: error:") and expected in err and "\n" not in err


def test_a_segmentation_set_is_scored_by_miou_with_a_frozen_head(ray_local, tmp_path,
                                                                 tracking):
    out = tmp_path / "seg.json"
    rc = main(["evaluate", "random:atto", str(segmentation_like(tmp_path)), "--results",
               str(out), "--seeds", "1", "--set", "segmentation.epochs=2", *QUICK])
    assert rc == 0
    [row] = json.loads(out.read_text())["results"]
    assert row["metric"] == "miou" and 0 <= row["value"] <= 1


@pytest.mark.s3
def test_results_go_to_the_configured_s3_endpoint(ray_local, tmp_path, tracking, s3_endpoint,
                                                  s3_bucket, monkeypatch):
    # Credentials from the environment, the endpoint only in the config (storage.endpoint_url).
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_endpoint.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_endpoint.secret_access_key)
    rc = main(["evaluate", "random:atto", str(eurosat_like(tmp_path)), "--protocol", "knn",
               "--seeds", "1", "--results", f"{s3_bucket}/eval/results.json",
               "--set", f"storage.endpoint_url={s3_endpoint.endpoint_url}",
               "--set", "storage.region=us-east-1", *QUICK])
    assert rc == 0
    written = resolve(f"{s3_bucket}/eval/results.json", s3_endpoint)
    [row] = json.loads(written.read_bytes())["results"]
    assert row["protocol"] == "knn" and row["dataset"] == "m-eurosat"
