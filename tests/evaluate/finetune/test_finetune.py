"""``mpmae evaluate --protocol finetune`` end to end: the real CLI, a real local Ray, MLflow
in SQLite, GEO-Bench-layout datasets written in code; and a fine-tune killed mid-way that
resumes from its checkpoint when the same command runs again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import torch
from geobench_layout import (
    SEGMENTATION_LABEL,
    class_map,
    eurosat_like,
    segmentation_like,
    write_dataset,
)

from mpmae.cli import main
from mpmae.data.geobench.writer import SENTINEL2_13

pytestmark = pytest.mark.ray

PLATFORM = Path(__file__).resolve().parents[3] / "platform"


def quick(work_dir: Path, epochs: int = 2) -> list[str]:
    """A tiny recipe: a few epochs, small batches, samples read in the training process."""
    sets = [f"finetune.work_dir={work_dir}", f"finetune.epochs={epochs}",
            "finetune.batch_size=4", "finetune.micro_batch=2", "finetune.loader_workers=0",
            f"unet.epochs={epochs}", "unet.frozen_epochs=1", "unet.batch_size=4",
            "unet.figure_samples=2", "mlflow.system_metrics=false"]
    return ["--protocol", "finetune", "--seeds", "1",
            *[arg for s in sets for arg in ("--set", s)]]


def _cell_files(work_dir: Path) -> dict[str, float]:
    return {str(p.relative_to(work_dir)): p.stat().st_mtime_ns
            for p in work_dir.rglob("*") if p.is_file()}


def test_a_classification_fine_tune_is_scored_and_a_rerun_retrains_nothing(
        ray_local, tmp_path, tracking, capsys):
    folder = eurosat_like(tmp_path / "bench")
    out, work = tmp_path / "ft.json", tmp_path / "cells"
    args = ["evaluate", "random:atto", str(folder), "--results", str(out), *quick(work)]
    assert main(args) == 0
    [row] = json.loads(out.read_text())["results"]
    assert row["protocol"] == "finetune" and row["metric"] == "accuracy"
    assert row["ci95"][0] <= row["value"] <= row["ci95"][1]
    assert row["best_val"]["split"] == "valid" and row["best_val"]["epoch"] in (0, 1)
    assert 0 <= row["best_val"]["value"] <= 1
    assert row["epochs"] == 2 and row["resumed_from_epoch"] == 0 and row["workers"] == 1
    files = _cell_files(work)
    assert sorted(Path(f).name for f in files) == ["epoch-0000.json", "epoch-0000.pt",
                                                    "epoch-0001.json", "epoch-0001.pt",
                                                    "result.json"]
    assert "fine-tuning 1 of 1 cell(s)" in capsys.readouterr().out

    assert main(args) == 0  # the same command again: read back, nothing trained
    assert json.loads(out.read_text())["results"] == [row]
    assert _cell_files(work) == files
    assert "fine-tuning 0 of 1 cell(s)" in capsys.readouterr().out


def test_two_workers_fine_tune_one_cell_with_ddp(ray_local, tmp_path, tracking):
    folder = eurosat_like(tmp_path / "bench")
    out = tmp_path / "ddp.json"
    assert main(["evaluate", "random:atto", str(folder), "--results", str(out),
                 *quick(tmp_path / "cells"), "--set", "finetune.workers=2",
                 "--set", "finetune.micro_batch=1"]) == 0  # 2 micro-batches per step
    [row] = json.loads(out.read_text())["results"]
    assert row["workers"] == 2 and row["metric"] == "accuracy"
    assert row["ci95"][0] <= row["value"] <= row["ci95"][1]


def test_a_unet_fine_tune_pads_scores_miou_per_class_and_logs_a_figure(ray_local, tmp_path,
                                                                         tracking):
    # 12x12 is not a multiple of the patch (8): inputs are zero-padded to 16x16 and the
    # logits cropped back to 12x12 for the loss and the scores.
    folder = write_dataset(tmp_path / "m-cashew-plant", SENTINEL2_13, SEGMENTATION_LABEL,
                           lambda i: (SEGMENTATION_LABEL, class_map(i, 12)), size=12)
    out = tmp_path / "seg.json"
    assert main(["evaluate", "random:atto", str(folder), "--results", str(out),
                 *quick(tmp_path / "cells")]) == 0
    [row] = json.loads(out.read_text())["results"]
    assert row["metric"] == "miou" and 0 <= row["value"] <= 1
    assert row["input_size"] == "12x12 zero-padded to 16x16 (patch 8)"
    assert len(row["per_class_iou"]) == 3
    assert all(v is None or 0 <= v <= 1 for v in row["per_class_iou"])
    history = json.loads(next((tmp_path / "cells").rglob("result.json")).read_text())["history"]
    assert [h["encoder_frozen"] for h in history] == [True, False]
    client = mlflow.MlflowClient(tracking)
    experiment = client.get_experiment_by_name("mpmae-evaluate").experiment_id
    [parent] = [r for r in client.search_runs([experiment])
                if "mlflow.parentRunId" not in r.data.tags]
    names = {a.path for a in client.list_artifacts(parent.info.run_id, "results")}
    assert "results/m-cashew-plant-default-seed0-predictions.png" in names


def test_a_killed_fine_tune_resumes_from_its_checkpoint(ray_local, tmp_path, tracking):
    folder = segmentation_like(tmp_path / "bench")
    work = tmp_path / "cells"
    epochs = 30
    args = ["evaluate", "random:atto", str(folder), *quick(work, epochs)]
    driver = _driver(args, ray_local, stderr=subprocess.DEVNULL)
    try:
        _wait_for_second_epoch(work, driver)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    _wait_until_still(work)
    assert not list(work.rglob("result.json")), "it finished before the kill"
    assert main(args) == 0  # the same command again
    result = json.loads(next(work.rglob("result.json")).read_text())
    resumed = result["resumed_from_epoch"]
    assert 2 <= resumed < epochs  # not from epoch 0
    history = result["history"]
    assert [h["epoch"] for h in history] == list(range(epochs))
    assert {h["session_start"] for h in history[:resumed]} == {0}
    assert {h["session_start"] for h in history[resumed:]} == {resumed}


def _driver(args: list[str], ray_local, stderr) -> subprocess.Popen:
    """`mpmae ARGS` in a process (and session) of its own on the tests' Ray."""
    env = {**os.environ, "RAY_ADDRESS": ray_local.get_runtime_context().gcs_address,
           "PYTHONPATH": str(PLATFORM)}
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; from mpmae.cli import main; "
         "sys.exit(main(sys.argv[1:]))", *args],
        env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True, start_new_session=True)


def _wait_for_second_epoch(work: Path, driver: subprocess.Popen) -> None:
    """Until the cell has checkpointed its second epoch (the driver still running)."""
    deadline = time.monotonic() + 240
    while not list(work.rglob("epoch-0001.json")):
        assert driver.poll() is None, "the fine-tune ended before its second epoch's end"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)


def _wait_until_still(work: Path, quiet: float = 3.0, limit: float = 60.0) -> None:
    """Until the killed driver's training worker (which Ray ends with its job) has
    stopped writing checkpoints."""
    start, last, seen = time.monotonic(), time.monotonic(), _cell_files(work)
    while time.monotonic() - last < quiet and time.monotonic() - start < limit:
        time.sleep(0.2)
        if (now := _cell_files(work)) != seen:
            seen, last = now, time.monotonic()


@pytest.mark.parametrize("setting, expected", [
    ("unet.frozen_epochs=5", "unet.frozen_epochs: must be 0 or more and below epochs"),
    ("finetune.workers=0", "finetune.workers: must be 1 or more"),
    ("finetune.layer_decay=1.5", "finetune.layer_decay: must be in (0, 1]"),
])
def test_a_bad_recipe_is_one_line_naming_the_key(setting, expected, ray_local, tmp_path,
                                                 tracking, capsys):
    folder = segmentation_like(tmp_path)
    assert main(["evaluate", "random:atto", str(folder), *quick(tmp_path / "cells"),
                 "--set", setting]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mpmae: error:") and expected in err and "\n" not in err


def test_a_preempted_fine_tune_checkpoints_its_step_and_resumes_there(ray_local, tmp_path,
                                                                      tracking):
    folder = segmentation_like(tmp_path / "bench")  # 10 train samples: 3 steps an epoch
    work = tmp_path / "cells"
    epochs = 30
    args = ["evaluate", "random:atto", str(folder), *quick(work, epochs)]
    driver = _driver(args, ray_local, stderr=subprocess.PIPE)
    try:
        _wait_for_second_epoch(work, driver)
        driver.send_signal(signal.SIGTERM)  # to the command alone, as a scheduler sends it
        _, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert driver.returncode == 75, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("mpmae: m-cashew-plant: fine-tune preempted, 1 cell(s) "
                           "checkpointed at their current step"), last
    assert last.endswith("run the same command to resume")
    assert not list(work.rglob("result.json"))
    newest = max(work.rglob("epoch-*.pt"))
    state = torch.load(newest, weights_only=True)
    assert 1 <= state["batch"] <= 3 and len(state["losses"]) == state["batch"]
    stopped_in = state["epoch"]

    assert main(args) == 0  # the same command resumes inside the epoch it stopped in
    result = json.loads(next(work.rglob("result.json")).read_text())
    assert result["resumed_from_epoch"] == stopped_in
    history = result["history"]
    assert [h["epoch"] for h in history] == list(range(epochs))
    assert {h["session_start"] for h in history[stopped_in:]} == {stopped_in}
    assert not list(work.rglob("preemption-notice"))  # a resume clears the old notice


def test_a_preempted_fine_tune_runs_in_mlflow_end_killed(ray_local, tmp_path, tracking):
    folder = eurosat_like(tmp_path / "bench")
    notice = tmp_path / "spot-notice"
    notice.write_text("terminate")  # the node's notice is there from the start
    args = ["evaluate", "random:atto", str(folder), *quick(tmp_path / "cells", 3),
            "--set", f"finetune.preemption_notice={notice}"]
    assert main(args) == 75
    client = mlflow.MlflowClient(tracking)
    experiment = client.get_experiment_by_name("mpmae-evaluate").experiment_id
    [run] = client.search_runs([experiment])
    assert run.info.status == "KILLED"
    [state_file] = (tmp_path / "cells").rglob("epoch-*.pt")  # its first steps, kept
    state = torch.load(state_file, weights_only=True)
    assert state["epoch"] == 0 and 1 <= state["batch"] <= 3
    notice.unlink()
    assert main(args) == 0
