"""Checkpoints: RNG states round-trip, and a state file that would run code is refused."""

from __future__ import annotations

import hashlib
import json
import os
import random

import numpy as np
import pytest
import torch

from mpmae.train.checkpoint import (
    MANIFEST_FILE,
    STATE_FILE,
    load_checkpoint,
    restore_rng,
    rng_state,
    save_checkpoint,
)
from mpmae.train.engine.checkpoint_store import CheckpointError


def test_rng_states_round_trip_through_a_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    save_checkpoint(tmp_path, {"step": 5, "rng": rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    restore_rng(load_checkpoint(tmp_path)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_state_file_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"step": 1, "payload": _RunsCode(str(marker))}, tmp_path / STATE_FILE)
    digest = hashlib.sha256((tmp_path / STATE_FILE).read_bytes()).hexdigest()
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({"step": 1, "sha256": digest}))
    with pytest.raises(CheckpointError, match="tampered"):
        load_checkpoint(tmp_path)
    assert not marker.exists()


# Rank 0's writer on a "full disk" (files capped at 64 KiB): step 2's small state fits, the
# big ones fail midway. A preemption's failure never stops it: the run ends anyway.
FULL_DISK_RUN = r"""
import json, sys, torch
from mpmae.storage import resolve
from mpmae.train.checkpoint import RunCheckpoints
from mpmae.train.engine.checkpoint_store import CheckpointWriteError
lines = []
writer = RunCheckpoints(resolve(sys.argv[1]), limit=1, warn=lines.append)
big = {"model": {"w": torch.zeros(65536)}}
written = [writer.write({"step": 2}) is not None, writer.write({**big, "step": 4}) is not None,
           writer.write({**big, "step": 6}, preempted=True) is not None]
try:
    writer.write({**big, "step": 8})
    stopped = ""
except CheckpointWriteError as e:
    stopped = str(e)
print(json.dumps({"written": written, "lines": lines, "stopped": stopped,
                  "preempted": str(writer.unsaved_preemption),
                  "latest": writer.latest_step, "failed": writer.failures.total}))
"""


def test_a_pretraining_checkpoint_that_fails_on_a_full_disk_leaves_the_one_before(tmp_path):
    from faults import run_on_a_full_disk

    from mpmae.storage import resolve
    from mpmae.train.resume import stored_checkpoints

    run_dir = tmp_path / "run"
    done = run_on_a_full_disk(FULL_DISK_RUN, str(run_dir), max_file_bytes=64 * 1024)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["written"] == [True, False, False]
    assert out["latest"] == 2 and out["failed"] == 3
    (step_4,) = out["lines"]
    assert step_4.startswith(f"checkpoint at step 4 could not be written to "
                             f"{run_dir}/checkpoint_step-00000004_")
    assert "[Errno 27] File too large" in step_4
    assert "; the one at step 2 remains the latest (training goes on" in step_4
    assert out["preempted"].startswith("preempted at step 6, but its checkpoint at step 6 "
                                       f"could not be written to {run_dir}/checkpoint_step-")
    assert out["preempted"].endswith("; the one at step 2 remains the latest; run the same "
                                     "command to resume from step 2")
    assert out["stopped"].startswith("checkpoint at step 8 could not be written")
    assert "more than 1 allowed: stopping" in out["stopped"]
    assert out["stopped"].endswith("resume from step 2")
    # Only the intact checkpoint is there: failed folders are removed, no temp files.
    (folder,) = os.listdir(run_dir)
    assert sorted(os.listdir(run_dir / folder)) == [MANIFEST_FILE, STATE_FILE]
    assert [c.step for c in stored_checkpoints(resolve(run_dir))] == [2]
