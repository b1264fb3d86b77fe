"""The training engine's checkpoint store: atomic, hashed, weights-only, the newest
``keep`` kept, a damaged newest one passed over for the one before."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace

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


def test_an_epoch_written_again_switches_over_at_its_manifest(tmp_path):
    # A preempted epoch's checkpoint, then the same epoch finished by the resume.
    store = CheckpointStore(resolve(tmp_path), keep=2)
    assert store.save(0, _state(0)) and store.save(1, {**_state(1), "batch": 2})
    assert store.save(1, _state(1))
    names = sorted(os.listdir(tmp_path))  # the partial epoch 1's state is gone
    assert len(names) == 4 and re.fullmatch(r"epoch-0001-[0-9a-f]{8}\.pt", names.pop(2))
    assert names == ["epoch-0000.json", "epoch-0000.pt", "epoch-0001.json"]
    assert "batch" not in store.load_latest(pytest.fail)
    assert store.save(2, _state(2)) and store.save(3, _state(3))  # rotation finds it
    assert sorted(os.listdir(tmp_path)) == ["epoch-0002.json", "epoch-0002.pt",
                                            "epoch-0003.json", "epoch-0003.pt"]


# A child on a "full disk" (files capped at 64 KiB): the small states fit (epoch 0, and a
# preempted epoch 1 at its batch 2); the big ones (256 KiB) fail midway through their temp
# file — epoch 1 finished, then epoch 2 — and the third failure in a row is one more than
# the store allows.
FULL_DISK_SAVES = r"""
import json, sys, torch
from mpmae.storage import resolve
from mpmae.train.engine.checkpoint_store import CheckpointStore, CheckpointWriteError
lines = []
store = CheckpointStore(resolve(sys.argv[1]), keep=2, max_failed_writes=2, warn=lines.append)
small = {"model": {"w": torch.zeros(3)}, "history": []}
saved = [store.save(0, {**small, "epoch": 0}), store.save(1, {**small, "epoch": 1, "batch": 2})]
big = {"model": {"w": torch.zeros(65536)}, "history": []}
saved += [store.save(epoch, {**big, "epoch": epoch}) for epoch in (1, 2)]
try:
    store.save(3, {**big, "epoch": 3})
    stopped = ""
except CheckpointWriteError as e:
    stopped = str(e)
print(json.dumps({"saved": saved, "lines": lines, "stopped": stopped}))
"""


def test_a_write_that_fails_on_a_full_disk_leaves_the_previous_checkpoint_the_latest(tmp_path):
    from faults import run_on_a_full_disk

    folder = tmp_path / "cell"
    done = run_on_a_full_disk(FULL_DISK_SAVES, str(folder), max_file_bytes=64 * 1024)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["saved"] == [True, True, False, False]
    first = out["lines"][0]
    assert re.match(rf"the checkpoint of epoch 1 could not be written to {folder}: cannot "
                    rf"access {folder}/epoch-0001-[0-9a-f]{{8}}\.pt: \[Errno 27\] File too "
                    r"large", first), first
    assert "; the one at epoch 1 remains the latest (training goes on" in first
    assert "failure 1 in a row of 2 allowed" in first and len(out["lines"]) == 2
    assert out["stopped"].startswith("the checkpoint of epoch 3 could not be written")
    assert "3 checkpoint writes failed in a row, more than 2 allowed: stopping" in out["stopped"]
    assert out["stopped"].endswith("resume from epoch 1")
    # Nothing half-written is left to be read back: no temp file, no state without manifest,
    # and the preempted epoch 1 is still whole, still the one a resume gets.
    assert sorted(os.listdir(folder)) == ["epoch-0000.json", "epoch-0000.pt",
                                          "epoch-0001.json", "epoch-0001.pt"]
    state = CheckpointStore(resolve(folder)).load_latest(pytest.fail)
    assert state["epoch"] == 1 and state["batch"] == 2


@pytest.mark.s3
def test_a_manifest_the_store_refuses_leaves_no_checkpoint_behind(s3_endpoint, s3_bucket):
    from faults import s3_proxy

    proxies = s3_proxy()
    proxy = proxies.S3Proxy(s3_endpoint.endpoint_url, proxies.Weather(latency_s=0))
    try:
        opts = replace(s3_endpoint, endpoint_url=proxy.start(), retries=1)
        store = CheckpointStore(resolve(f"{s3_bucket}/cell", opts), warn=(lines := []).append)
        assert store.save(0, _state(0))
        # Every manifest write fails (507): the state goes up, its manifest never does.
        proxy.weather = proxies.Weather(latency_s=0, fail_writes=-1, write_fault="507",
                                        write_paths=r"epoch-\d+\.json")
        assert not store.save(1, _state(1))
        assert proxy.counts.failed_writes == 3  # our 3 rounds of 1 SDK attempt each
        assert "the checkpoint of epoch 1 could not be written to" in lines[0]
        assert "HTTP 507" in lines[0] or "507" in lines[0]
        assert "the one at epoch 0 remains the latest" in lines[0]
        proxy.weather = proxies.Weather(latency_s=0)
        assert store.folder.list_files() == ["epoch-0000.json", "epoch-0000.pt"]
        assert store.load_latest(pytest.fail)["epoch"] == 0
    finally:
        proxy.stop()
