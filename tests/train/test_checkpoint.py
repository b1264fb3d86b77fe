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
