"""The training engine's checkpoint store: atomic, hashed, weights-only, the newest
``keep`` kept, a damaged newest one passed over for the one before."""

from __future__ import annotations

import os

import pytest
import torch

from mpmae.storage import resolve
from mpmae.train.engine.checkpoint_store import CheckpointError, CheckpointStore


def _state(value: float) -> dict:
    return {"model": {"w": torch.full((3,), value)}, "epoch": int(value), "history": []}


def test_checkpoints_keep_the_newest_and_fall_back_past_a_damaged_one(tmp_path):
    store = CheckpointStore(resolve(tmp_path), keep=2)
    for epoch in range(3):
        store.save(epoch, _state(epoch))
    assert store.epochs() == [2, 1]
    assert sorted(os.listdir(tmp_path)) == ["epoch-0001.json", "epoch-0001.pt",
                                            "epoch-0002.json", "epoch-0002.pt"]
    with open(tmp_path / "epoch-0002.pt", "r+b") as f:  # a flipped byte
        f.seek(40)
        byte = f.read(1)
        f.seek(40)
        f.write(bytes([byte[0] ^ 0xFF]))
    warnings = []
    state = store.load_latest(warnings.append)
    assert state["epoch"] == 1 and "damaged (hash mismatch)" in warnings[0]
    (tmp_path / "epoch-0001.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"no checkpoint in .* is intact .* delete"):
        store.load_latest(warnings.append)


class _RunsOnLoad:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = CheckpointStore(resolve(tmp_path / "cell"))
    store.save(0, {"model": _RunsOnLoad(), "epoch": 0, "history": []})  # hash matches
    warnings = []
    with pytest.raises(CheckpointError, match="is intact"):
        store.load_latest(warnings.append)
    assert "holds more than tensors" in warnings[0]
    assert not (tmp_path / "pwned").exists()
