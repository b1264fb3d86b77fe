"""Runs that cannot lose their last good state: a damaged newest checkpoint, a run whose
loss goes non-finite. Real local Ray, two CPU workers, a few steps."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import pytest
import torch

from mpmae.train.checkpoint import STATE_FILE, load_checkpoint
from mpmae.train.launch import RunFailedError, pretrain

pytestmark = pytest.mark.ray


def _by_step(run_dir: Path) -> dict[int, Path]:
    """Every checkpoint folder by the step its manifest names (damaged ones included)."""
    return {json.loads(Path(p).read_text())["step"]: Path(p).parent
            for p in glob.glob(str(run_dir / "checkpoint_*" / "checkpoint.json"))}


def test_a_damaged_newest_checkpoint_resumes_from_the_one_before(ray_local, tiny_config,
                                                                 mlflow_runs):
    first = pretrain(tiny_config("train.figure_every=0"), progress=lambda _: None)
    run_dir = Path(first.run_dir)
    newest = _by_step(run_dir)[4] / STATE_FILE
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    # The same command again is all it takes: no folder to delete.
    second = pretrain(tiny_config("train.max_steps=6", "train.figure_every=0"),
                      progress=lambda _: None)
    client, _ = mlflow_runs(tiny_config())
    steps = [m.step for m in client.get_metric_history(second.mlflow_run_id, "loss")]
    assert steps == [1, 2, 3, 4, 3, 4, 5, 6]  # steps 3-4 redone from the step-2 checkpoint
    assert load_checkpoint(_by_step(run_dir)[6])["step"] == 6
    # Ray Train kept the newest train.keep_checkpoints=3 (the damaged step 4, the redone
    # one in a folder of its own, and step 6) and deleted step 2's folder.
    manifests = glob.glob(str(run_dir / "checkpoint_*" / "checkpoint.json"))
    assert sorted(json.loads(Path(p).read_text())["step"] for p in manifests) == [4, 4, 6]


def test_a_run_whose_loss_goes_non_finite_stops_and_keeps_finite_checkpoints(
        ray_local, tiny_config, mlflow_runs):
    # AdamW moves every weight by about lr: after one step at 1e30 the loss overflows.
    cfg = tiny_config("optim.lr=1e30", "optim.warmup_epochs=0", "train.max_steps=8",
                      "train.max_nonfinite_steps=2", "train.figure_every=0")
    with pytest.raises(RunFailedError, match=r"3 optimizer steps had a non-finite loss"):
        pretrain(cfg, progress=lambda _: None)
    client, runs = mlflow_runs(cfg)
    history = client.get_metric_history(runs[0].info.run_id, "nonfinite_steps")
    assert max(m.value for m in history) == 2  # the third skip stopped it before a report
    for folder in _by_step(Path(cfg.storage.root) / "t").values():
        weights = load_checkpoint(folder)["model"]
        assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())
