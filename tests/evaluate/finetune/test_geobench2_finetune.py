"""``mpmae evaluate ENCODER GEO_BENCH_2_DIR --protocol finetune``: the real CLI, a real
local Ray, MLflow in SQLite, tortilla datasets written by ``data synth-geobench2``; a
multi-label fine-tune (macro F1, as the leaderboard scores it) preempted at its first step
and resumed, and a U-Net on a segmentation set, both ``full_ft`` in the submission file."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from mpmae.cli import main
from mpmae.evaluate.reports.geobench2_leaderboard import SUBMISSION_FILE

pytestmark = pytest.mark.ray


def _quick(work_dir) -> list[str]:
    """A tiny recipe: 2 epochs, batches of 4, samples read in the training process."""
    sets = [f"finetune.work_dir={work_dir}", "finetune.epochs=2", "finetune.batch_size=4",
            "finetune.micro_batch=2", "finetune.loader_workers=0", "unet.epochs=2",
            "unet.frozen_epochs=1", "unet.batch_size=4", "unet.figure_samples=1",
            "mlflow.system_metrics=false"]
    return ["--protocol", "finetune", "--seeds", "1",
            *[arg for s in sets for arg in ("--set", s)]]


def test_a_geobench2_fine_tune_resumes_after_preemption_and_is_submitted_as_full_ft(
        ray_local, tmp_path, tracking):
    synth = tmp_path / "geobench2"
    assert main(["data", "synth-geobench2", str(synth), "--tiles", "20", "--size", "16"]) == 0
    notice = tmp_path / "spot-notice"
    notice.write_text("terminate")  # the node's notice is there from the start
    work, out = tmp_path / "cells", tmp_path / "out" / "results.json"
    args = ["evaluate", "random:atto", str(synth / "benv2"), str(synth / "cloudsen12"),
            "--results", str(out), *_quick(work),
            "--set", f"finetune.preemption_notice={notice}"]
    assert main(args) == 75
    [state_file] = work.rglob("epoch-*.pt")  # benv2's first steps, kept
    assert "benv2" in state_file.parts
    state = torch.load(state_file, weights_only=True)
    assert state["epoch"] == 0 and state["batch"] >= 1

    notice.unlink()
    assert main(args) == 0  # the same command: benv2 resumes, cloudsen12 trains
    rows = {r["dataset"]: r for r in json.loads(out.read_text())["results"]}
    benv2, cloud = rows["benv2"], rows["cloudsen12"]
    assert (benv2["metric"], benv2["recipe"]) == ("f1_macro", "mmearth-finetune")
    assert (cloud["metric"], cloud["recipe"]) == ("miou", "mmearth-unet-finetune")
    for row in (benv2, cloud):
        assert row["protocol"] == "finetune" and row["epochs"] == 2
        assert row["ci95"][0] <= row["value"] <= row["ci95"][1]
        assert row["best_val"]["split"] == "valid"
        assert row["normalisation"].startswith("train split statistics")
        assert row["input_size"].startswith("native 16x16; the benchmark's input size")
    history = json.loads(next((work / "random-atto" / "benv2").rglob("result.json"))
                         .read_text())["history"]
    assert [h["epoch"] for h in history] == [0, 1]
    assert len(cloud["per_class_iou"]) == 4  # cloudsen12's classes

    with (out.parent / SUBMISSION_FILE).open(newline="") as f:
        header, *lines = list(csv.reader(f))
    cells = {c["dataset"]: c for c in (dict(zip(header, line, strict=True)) for line in lines)}
    assert sorted(cells) == ["benv2", "cloudsen12"] and len(lines) == 2
    assert {c["frozen_or_full_ft"] for c in cells.values()} == {"full_ft"}
    assert cells["benv2"]["Metric"] == "Multilabel_F1_Score"
    assert cells["benv2"]["decoder"] == "mmearth-finetune"
    assert float(cells["benv2"]["test metric"]) == benv2["value"]
    assert cells["cloudsen12"]["Metric"] == "Multiclass_Jaccard_Index"
    assert float(cells["benv2"]["lr"]) == 2e-4 * 4 / 256  # blr x the configured batch
    assert (cells["benv2"]["early_stop_patience"], cells["benv2"]["n_trials"]) == ("", "0")
