"""``mpmae evaluate ENC_A ENC_B DATASET…`` end to end: the real CLI, a real local Ray, MLflow
in SQLite, GEO-Bench-layout datasets and a normalizer.json written in code."""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

import mlflow
import pytest
from geobench_layout import (
    NORMALIZER_BOUNDS,
    bigearthnet_like,
    eurosat_like,
    segmentation_like,
    write_normalizer,
)

from mpmae.cli import main
from mpmae.evaluate.command.encoders import open_encoder
from mpmae.evaluate.command.plan import open_datasets, plan_all
from mpmae.evaluate.config import EvaluateConfig
from mpmae.evaluate.reports.comparison_table import NORMALISED
from mpmae.modalities import S2_INPUT_BANDS
from mpmae.model import build_encoder, save_encoder

QUICK = ["--set", "linear.epochs=3", "--set", "mlflow.system_metrics=false"]
EXPERIMENT = "mpmae-evaluate"


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    yield mlflow.MlflowClient(uri)
    mlflow.set_tracking_uri(None)


@pytest.fixture
def bench(tmp_path):
    """classification_v1.0-like: two datasets and GEO-Bench's normalizer.json."""
    root = tmp_path / "classification_v1.0"
    eurosat_like(root)
    bigearthnet_like(root)
    write_normalizer(root)
    return root


def _release(tmp_path):
    folder = tmp_path / "release-atto"
    save_encoder(build_encoder("atto"), folder,
                 metadata={"input_bands": list(S2_INPUT_BANDS), "normalisation": None})
    return str(folder)


def test_a_note_the_same_for_every_encoder_is_printed_once(tmp_path):
    """kNN skips a segmentation dataset whichever encoder it plans; the console says so
    once, not once per encoder."""
    bench = tmp_path / "bench"
    eurosat_like(bench)
    segmentation_like(bench)
    cfg = EvaluateConfig(protocol="knn")
    encoders = [open_encoder(f"random:atto:{seed}") for seed in (0, 1, 2)]
    lines: list[str] = []
    plans = plan_all(encoders, open_datasets([str(bench)]), cfg, lines.append)

    assert [len(p) for p in plans.values()] == [1, 1, 1]  # m-eurosat only, for each
    assert [line for line in lines if line.startswith("skipping")] == [
        "skipping m-cashew-plant is a segmentation dataset, which kNN does not score"]


@pytest.mark.ray
def test_two_encoders_make_one_comparison_with_nested_runs(ray_local, tmp_path, tracking,
                                                           bench, capsys):
    release, out = _release(tmp_path), tmp_path / "results.json"
    rc = main(["evaluate", "random:atto", release, str(bench), "--partition", "default",
               "--partition", "0.20x_train", "--seeds", "2", "--results", str(out), *QUICK])
    assert rc == 0

    rows = json.loads(out.read_text())["results"]
    assert len(rows) == 2 * 2 * 2 * 2  # encoders × datasets × partitions × seeds
    assert {r["encoder"] for r in rows} == {"random:atto", release}
    console = capsys.readouterr().out
    table = console[console.index("linear / default"):]
    assert table.splitlines()[1].startswith("random:atto")
    assert table.splitlines()[2].startswith(release)
    assert NORMALISED in table.splitlines()[0] and "*" in table and "linear / 0.20x_train" in table

    runs = tracking.search_runs([tracking.get_experiment_by_name(EXPERIMENT).experiment_id])
    parent_of = {r.info.run_id: r.data.tags.get("mlflow.parentRunId") for r in runs}
    [top] = [r for r in runs if parent_of[r.info.run_id] is None]
    encoder_runs = [r for r in runs if parent_of[r.info.run_id] == top.info.run_id]
    assert sorted(r.data.tags["mpmae.encoder"] for r in encoder_runs) == sorted(
        ["random:atto", release])
    for run in encoder_runs:  # each encoder's cells one level further down
        cells = [r for r in runs if parent_of[r.info.run_id] == run.info.run_id]
        assert len(cells) == 2 * 2
        assert {"results/results.json", "results/scores.png"} <= {
            a.path for a in tracking.list_artifacts(run.info.run_id, "results")}
    assert len(runs) == 1 + 2 + 2 * 4 and top.info.status == "FINISHED"
    assert {"results/results.json", "results/comparison.csv", "results/comparison.txt",
            "results/comparison.png", "results/label_efficiency_m-eurosat.png",
            "results/label_efficiency_m-bigearthnet.png"} <= {
        a.path for a in tracking.list_artifacts(top.info.run_id, "results")}

    table_csv = tracking.download_artifacts(top.info.run_id, "results/comparison.csv",
                                            str(tmp_path))
    lines = list(csv.DictReader(io.StringIO(Path(table_csv).read_text())))
    assert [(r["partition"], r["encoder"]) for r in lines] == [
        ("default", "random:atto"), ("default", release),
        ("0.20x_train", "random:atto"), ("0.20x_train", release)]
    for line in lines:  # the normalised score is GEO-Bench's, from the rows themselves
        expected = statistics.mean(
            (statistics.mean(r["value"] for r in rows if (r["encoder"], r["partition"],
                                                           r["dataset"]) ==
                             (line["encoder"], line["partition"], name)) - low) / (high - low)
            for name, (low, high) in NORMALIZER_BOUNDS.items()
            if name in {"m-eurosat", "m-bigearthnet"})
        assert float(line[NORMALISED]) == pytest.approx(expected)
    for partition in ("default", "0.20x_train"):
        group = [r for r in lines if r["partition"] == partition]
        for column in ("m-eurosat", "m-bigearthnet", NORMALISED):
            best = max(float(r[column]) for r in group)
            assert [r[f"{column} best"] == "True" for r in group] == [
                float(r[column]) == best for r in group]


@pytest.mark.ray
@pytest.mark.parametrize("case", ["typo", "order", "normalizer"])
def test_bad_comparison_input_runs_nothing_and_fails_in_one_line(case, ray_local, tmp_path,
                                                                 tracking, bench, capsys):
    args = {"typo": ["random:atto", "random:femto", str(bench / "m-eurosatt")],
            "order": ["random:atto", str(bench), "random:femto"],
            "normalizer": ["random:atto", "random:femto", str(bench)]}[case]
    if case == "normalizer":
        write_normalizer(bench, {"m-eurosat": [0.99, 0.9]})
    expected = {"typo": f"'{bench / 'm-eurosatt'}' → unknown (no such folder",
                "order": "encoders must all come before the datasets",
                "normalizer": "normalizer.json: 'm-eurosat' has low 0.99 not below high 0.9"}
    assert main(["evaluate", *args, *QUICK]) == 2

    err = capsys.readouterr().err.strip()
    assert err.startswith("mpmae: error:") and expected[case] in err and "\n" not in err
    assert tracking.get_experiment_by_name(EXPERIMENT) is None  # nothing was tracked
