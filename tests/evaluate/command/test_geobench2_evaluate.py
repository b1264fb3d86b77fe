"""``mpmae evaluate ENCODER… GEO_BENCH_2_DIR`` end to end: the real CLI, a real local Ray,
MLflow in SQLite, and GEO-Bench-2 tortilla datasets written by ``data synth-geobench2``."""

from __future__ import annotations

import csv
import json
import shutil

import mlflow
import pytest
import torch

from mpmae.cli import main
from mpmae.data.geobench2.catalog import dataset_info
from mpmae.data.geobench2.writer import Entry, geotiff_bytes, write_tortilla
from mpmae.evaluate.config import EvaluateConfig
from mpmae.evaluate.protocols.frozen import protocol_score
from mpmae.evaluate.reports.geobench2_leaderboard import SUBMISSION_COLUMNS, SUBMISSION_FILE
from mpmae.model.convnextv2 import build_encoder
from mpmae.model.release import save_encoder

QUICK = ["--set", "mlflow.system_metrics=false"]
TABLE = "geobench2_leaderboard.md"


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """so2sat, benv2 and cloudsen12 as the benchmark ships them: 40 samples of 16x16."""
    root = tmp_path_factory.mktemp("geobench2")
    assert main(["data", "synth-geobench2", str(root), "--tiles", "40", "--size", "16"]) == 0
    return root


def _submission(folder):
    with (folder / SUBMISSION_FILE).open(newline="") as f:
        return list(csv.reader(f))


def _artifacts(uri, run_id):
    return {a.path for a in mlflow.MlflowClient(uri).list_artifacts(run_id, "results")}


def _runs(uri):
    client = mlflow.MlflowClient(uri)
    return client.search_runs([client.get_experiment_by_name("mpmae-evaluate").experiment_id])


@pytest.mark.ray
def test_knn_on_a_geobench2_folder_writes_the_capability_table_and_submission(
        ray_local, synth, tmp_path, tracking, capsys):
    out = tmp_path / "knn" / "results.json"
    rc = main(["evaluate", "random:atto", str(synth), "--protocol", "knn",
               "--results", str(out), *QUICK])
    assert rc == 0
    rows = json.loads(out.read_text())["results"]
    assert {r["dataset"]: r["metric"] for r in rows} == {"so2sat": "accuracy",
                                                         "benv2": "f1_macro"}
    assert all(r["normalisation"].startswith("train split statistics") for r in rows)
    assert {r["input_size"] for r in rows} == {"native 16x16; the benchmark's input size 32",
                                              "native 16x16; the benchmark's input size 120"}
    console = capsys.readouterr().out
    assert "skipping cloudsen12 is a segmentation dataset, which kNN does not score" in console
    assert "so2sat: bands missing from the dataset filled as MMEarth does" in console

    table = (out.parent / TABLE).read_text()
    assert "| random:atto | so2sat | Overall_Accuracy |" in table
    assert "| random:atto | benv2 | Multilabel_F1_Score |" in table
    assert "| random:atto | ALL | 2 |" in table
    assert "stands for each of the leaderboard's 5 seeds" in table
    header, *lines = _submission(out.parent)
    assert tuple(header) == SUBMISSION_COLUMNS
    assert len(lines) == 2 * 5  # two datasets, the one kNN score as each of 5 seeds
    value = {r["dataset"]: r["value"] for r in rows}
    for line in lines:
        cell = dict(zip(header, line, strict=True))
        assert float(cell["test metric"]) == value[cell["dataset"]]
        assert cell["decoder"] == "knn-similarity-vote" and cell["frozen_or_full_ft"] == "frozen"
    [run] = [r for r in _runs(tracking) if "mlflow.parentRunId" not in r.data.tags]
    assert {f"results/{TABLE}", f"results/{SUBMISSION_FILE}"} <= _artifacts(tracking,
                                                                            run.info.run_id)


@pytest.mark.ray
def test_two_encoders_logistic_comparison_logs_the_leaderboard_on_its_parent_run(
        ray_local, synth, tmp_path, tracking):
    out = tmp_path / "logistic" / "results.json"
    rc = main(["evaluate", "random:atto", "random:atto:1", str(synth / "so2sat"),
               str(synth / "benv2"), "--protocol", "logistic", "--results", str(out), *QUICK])
    assert rc == 0
    rows = json.loads(out.read_text())["results"]
    assert all(r["recipe"].startswith("lbfgs-logistic") for r in rows)
    assert {r["details"].get("valid_f1_macro") is not None for r in rows
            if r["dataset"] == "benv2"} == {True}  # its L2 chosen by the metric it is scored by
    header, *lines = _submission(out.parent)
    assert {line[header.index("backbone")] for line in lines} == {"random:atto",
                                                                  "random:atto:1"}
    assert len(lines) == 2 * 2 * 5
    table = (out.parent / TABLE).read_text()
    assert "| random:atto:1 | Classification | 4 | missing forestnet, treesatai |" in table
    [parent] = [r for r in _runs(tracking) if "mlflow.parentRunId" not in r.data.tags]
    assert f"results/{SUBMISSION_FILE}" in _artifacts(tracking, parent.info.run_id)


@pytest.mark.ray
def test_the_segmentation_head_scores_cloudsen12_and_fewer_seeds_are_labelled_a_demo(
        ray_local, synth, tmp_path, tracking):
    out = tmp_path / "seg" / "results.json"
    rc = main(["evaluate", "random:atto", str(synth / "cloudsen12"), "--seeds", "2",
               "--set", "segmentation.epochs=2", "--results", str(out), *QUICK])
    assert rc == 0
    rows = json.loads(out.read_text())["results"]
    assert [(r["metric"], r["recipe"], r["seed"]) for r in rows] == [
        ("miou", "frozen-segmentation-head", 0), ("miou", "frozen-segmentation-head", 1)]
    table = (out.parent / TABLE).read_text()
    assert "DEMO: 2 seed(s) per dataset, the leaderboard takes exactly 5" in table
    assert "not submittable: random:atto on cloudsen12: 2 seeds" in table
    header, *lines = _submission(out.parent)
    assert [line[header.index("Metric")] for line in lines] == ["Multiclass_Jaccard_Index"] * 2
    assert [float(line[header.index("test metric")]) for line in lines] == [
        r["value"] for r in rows]


def _tiny_tortilla(folder, name):
    folder.mkdir(parents=True)
    image = geotiff_bytes(torch.zeros(1, 4, 4, dtype=torch.int16).numpy())
    entries = [Entry(f"s{i}", [Entry("image", image)], metadata={"tortilla:data_split": split})
               for i, split in enumerate(("train", "validation", "test"))]
    return write_tortilla(folder / dataset_info(name).files[0], entries)


@pytest.mark.parametrize("case", ["truncated", "regression", "no sentinel-2"])
def test_a_dataset_the_reader_or_the_protocols_refuse_is_one_line(case, synth, tmp_path,
                                                                  tracking, capsys):
    if case == "truncated":
        folder = tmp_path / "so2sat"
        folder.mkdir()
        bad = folder / "geobench_so2sat.tortilla"
        bad.write_bytes((synth / "so2sat" / bad.name).read_bytes()[:1000])
        expected = str(bad)
    elif case == "regression":
        folder = tmp_path / "biomassters"
        _tiny_tortilla(folder, "biomassters")
        expected = ("biomassters is a pixel-regression dataset, which only the frozen "
                    "regression head scores, not protocol knn: use --protocol linear")
    else:
        folder = tmp_path / "caffe"
        _tiny_tortilla(folder, "caffe")
        expected = "caffe has no Sentinel-2 image (SAR), which MMEarth encoders take"
    rc = main(["evaluate", "random:atto", str(folder), "--protocol", "knn", *QUICK])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and "\n" not in err and expected in err


def test_knn_and_logistic_score_the_same_whatever_the_seed():
    """What a GEO-Bench-2 seed means: nothing for kNN and the logistic fit (their one
    score stands for the leaderboard's five), the head's start and batch order for
    linear."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(60, 8, generator=gen), torch.randint(0, 3, (60,), generator=gen)
    train, valid, test = ([x[:30]], y[:30]), ([x[30:45]], y[30:45]), ([x[45:]], y[45:])
    for protocol in ("knn", "logistic"):
        cfg = EvaluateConfig(protocol=protocol)
        scores = {protocol_score(cfg, "classification", train, test, 3, seed, (1, 1),
                                 valid).score.value for seed in (0, 1, 4)}
        assert len(scores) == 1, protocol


@pytest.mark.ray
def test_the_segmentation_head_scores_dynamic_earthnet_on_its_one_sentinel2_image(
        ray_local, synth, tmp_path, tracking, capsys):
    out = tmp_path / "den" / "results.json"
    rc = main(["evaluate", "random:atto", str(synth / "dynamic_earthnet"), "--seeds", "1",
               "--set", "segmentation.epochs=1", "--results", str(out), *QUICK])
    assert rc == 0
    [row] = json.loads(out.read_text())["results"]
    assert (row["dataset"], row["metric"]) == ("dynamic_earthnet", "miou")
    assert row["input_size"] == "native 16x16; the benchmark's input size 512"
    assert "| random:atto | dynamic_earthnet | Multiclass_Jaccard_Index |" in (
        out.parent / TABLE).read_text()
    assert "B9 ← B8A" in capsys.readouterr().out  # its S2 has B10, not B09


@pytest.mark.ray
def test_the_regression_head_scores_biomassters_by_rmse_and_submits_it_flipped(
        ray_local, synth, tmp_path, tracking):
    out = tmp_path / "agb" / "results.json"
    rc = main(["evaluate", "random:atto", str(synth / "biomassters"), "--seeds", "1",
               "--set", "segmentation.epochs=2", "--results", str(out), *QUICK])
    assert rc == 0
    [row] = json.loads(out.read_text())["results"]
    assert (row["dataset"], row["metric"], row["recipe"]) == (
        "biomassters", "rmse", "frozen-regression-head")
    assert 0 < row["ci95"][0] <= row["value"] <= row["ci95"][1]
    assert "| random:atto | biomassters | RMSE |" in (out.parent / TABLE).read_text()
    header, *lines = _submission(out.parent)
    cells = [dict(zip(header, line, strict=True)) for line in lines]
    assert [(c["Metric"], c["decoder"]) for c in cells] == [("RMSE", "frozen-regression-head")]
    # the leaderboard's flip of a lower-is-better RMSE
    assert float(cells[0]["test metric"]) == 1 - row["value"] * 0.2537951171398163


@pytest.mark.ray
def test_the_segmentation_head_scores_pastis_on_the_mean_of_its_hdf5_s2_dates(
        ray_local, synth, tmp_path, tracking, capsys):
    bench = tmp_path / "bench"  # a benchmark folder: fotw's missing bands skip it, said so
    for name in ("pastis", "fotw"):
        shutil.copytree(synth / name, bench / name)
    out = tmp_path / "pastis" / "results.json"
    rc = main(["evaluate", "random:atto", str(bench), "--seeds", "1",
               "--set", "segmentation.epochs=1", "--results", str(out), *QUICK])
    assert rc == 0
    [row] = json.loads(out.read_text())["results"]
    assert (row["dataset"], row["metric"]) == ("pastis", "miou")
    assert row["input_size"] == "native 16x16; the benchmark's input size 128"
    assert "| random:atto | pastis | Multiclass_Jaccard_Index |" in (
        out.parent / TABLE).read_text()
    console = capsys.readouterr().out
    assert "B1 ← B2" in console  # its S2 has neither B01 nor B09
    assert "skipping fotw lacks Sentinel-2 bands" in console


@pytest.mark.ray
def test_the_segmentation_head_scores_fotw_on_the_mean_of_its_two_windows(
        ray_local, synth, tmp_path, tracking, capsys):
    # random:atto takes 12 Sentinel-2 bands; fotw has 4 and no band is zero-filled.
    rc = main(["evaluate", "random:atto", str(synth / "fotw"), "--seeds", "1",
               "--results", str(tmp_path / "refused.json"), *QUICK])
    assert rc != 0
    assert ("fotw lacks Sentinel-2 bands ['B5', 'B6', 'B7', 'B8A', 'B9', 'B11', 'B12'] the "
            "encoder needs") in capsys.readouterr().err
    rgbn = tmp_path / "rgbn-atto"  # an encoder of fotw's four bands
    save_encoder(build_encoder("atto", in_chans=4), rgbn,
                 metadata={"input_bands": ["B4", "B3", "B2", "B8"], "normalisation": None})
    out = tmp_path / "fotw" / "results.json"
    rc = main(["evaluate", str(rgbn), str(synth / "fotw"), "--seeds", "1",
               "--set", "segmentation.epochs=1", "--results", str(out), *QUICK])
    assert rc == 0
    [row] = json.loads(out.read_text())["results"]
    assert (row["dataset"], row["metric"]) == ("fotw", "miou")
    assert row["input_size"] == "native 16x16; the benchmark's input size 256"
    assert f"| {rgbn} | fotw | Multiclass_Jaccard_Index |" in (out.parent / TABLE).read_text()
