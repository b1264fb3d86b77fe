"""End-to-end pretraining on a real local Ray with two CPU workers."""

from __future__ import annotations

import glob
import json
import shutil
import threading
import time
from pathlib import Path

import psutil
import pytest
import torch

import mpmae
from mpmae.cli import main
from mpmae.errors import MpmaeError
from mpmae.storage import StorageError, StorageOptions
from mpmae.train.checkpoint import load_checkpoint
from mpmae.train.launch import pretrain

pytestmark = pytest.mark.ray


def _checkpoints(run_dir: Path) -> list[Path]:
    found = [Path(p).parent for p in glob.glob(str(run_dir / "checkpoint_*" / "checkpoint.json"))]
    return sorted(found, key=lambda p: load_checkpoint(p)["step"])


def test_embedded_default_end_to_end(ray_local, mpmae_home, tiny_args, capsys):
    code = main(["pretrain", "--set", "data.synth_tiles=48", "--set", "data.tile_size=16",
                 "--set", "run_name=e2e", *tiny_args])
    assert code == 0
    out = capsys.readouterr().out
    assert "generating the synthetic dataset" in out and "mlflow ui --backend-store-uri" in out
    run_dir = mpmae_home / "runs" / "e2e"
    latest = load_checkpoint(_checkpoints(run_dir)[-1])
    assert latest["step"] == 4 and latest["mlflow_run_id"]
    encoder = mpmae.load_encoder(run_dir / "encoder")
    assert encoder.release_config["input_bands"][0] == "B1"
    with torch.no_grad():
        assert encoder.embed(torch.zeros(2, 12, 16, 16)).shape[0] == 2

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{mpmae_home / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("demo").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    run = runs[0]
    assert run.data.params["model.size"] == "atto"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2, 3, 4]
    for name in ("loss/sentinel2", "weight/eco_region", "lr", "tiles_per_s",
                 "data_wait_fraction"):
        assert name in run.data.metrics, name
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "reconstructions", "encoder"} <= artifacts
    figures = [a.path for a in client.list_artifacts(run.info.run_id, "reconstructions")]
    assert figures == ["reconstructions/step_000002.png", "reconstructions/step_000004.png"]
    assert client.get_registered_model("mpmae-encoder").latest_versions


def test_rerun_with_the_same_name_resumes_from_its_checkpoint(ray_local, tiny_config,
                                                              mlflow_runs):
    first = pretrain(tiny_config(), progress=lambda _: None)
    resumed_cfg = tiny_config("train.max_steps=6")
    said: list[str] = []
    second = pretrain(resumed_cfg, progress=said.append)
    assert second.mlflow_run_id == first.mlflow_run_id
    client, runs = mlflow_runs(resumed_cfg)
    assert len(runs) == 1
    steps = [m.step for m in client.get_metric_history(first.mlflow_run_id, "loss")]
    assert steps == [1, 2, 3, 4, 5, 6]  # continued at 5, nothing repeated
    latest = load_checkpoint(_checkpoints(Path(second.run_dir))[-1])
    assert latest["step"] == 6
    # 4 steps of 2 workers x 4 tiles into the 64-tile epoch 0 (8 steps per epoch)
    assert "the data resumes at epoch 0, after 32 tiles" in said
    assert (latest["epoch"], latest["epoch_tiles"]) == (0, 48)
    # each rank's own RNG states, not rank 0's twice
    rngs = latest["rng"]
    assert len(rngs) == 2 and not torch.equal(rngs[0]["torch"], rngs[1]["torch"])


def _training_workers() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True)
            if "RayTrainWorker" in " ".join(p.cmdline())]


def _wait_for_step(cfg, run_dir: Path, step: int, timeout: float = 300) -> None:
    import mlflow

    client = mlflow.MlflowClient(cfg.mlflow.tracking_uri)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (run_dir / "run.json").exists():
            run_id = json.loads((run_dir / "run.json").read_text())["mlflow_run_id"]
            if any(m.step >= step for m in client.get_metric_history(run_id, "loss")):
                return
        time.sleep(0.2)
    raise AssertionError(f"the run never reached step {step}")


def test_killed_worker_restarts_from_the_last_checkpoint(ray_local, tiny_config, mlflow_runs):
    cfg = tiny_config("train.max_steps=8", "scaling.max_failures=1", "train.figure_every=0")
    run_dir = Path(cfg.storage.root) / "t"
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(r=pretrain(cfg, lambda _: None)))
    thread.start()
    # Reports queue one deep: once step 5 is logged, the step-2 checkpoint is registered.
    _wait_for_step(cfg, run_dir, step=5)
    victims = _training_workers()
    assert victims, "no training worker found to kill"
    victims[-1].kill()
    thread.join(timeout=600)
    assert "r" in result, "the run did not finish after the worker was killed"
    client, runs = mlflow_runs(cfg)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    history = [m.step for m in client.get_metric_history(result["r"].mlflow_run_id, "loss")]
    first_checkpoint = 2
    repeated = {s for s in history if history.count(s) > 1}
    assert history[-1] == 8 and all(s > first_checkpoint for s in repeated), history
    for folder in _checkpoints(run_dir):  # every kept checkpoint still verifies
        assert load_checkpoint(folder)["step"] in (2, 4, 6, 8)


def test_corrupt_shard_mid_run_names_it_and_keeps_the_checkpoint(ray_local, tiny_config,
                                                                 small_world, tmp_path):
    world = tmp_path / "world"
    shutil.copytree(small_world, world)
    cfg = tiny_config(f"data.uri={world}", "train.figure_every=0")
    pretrain(cfg, progress=lambda _: None)
    manifest = json.loads((world / "dataset.json").read_text())
    for shard in manifest["splits"]["train"]:
        path = world / shard["path"]
        data = bytearray(path.read_bytes())
        data[len(data) // 3 : len(data) // 3 + 4000] = bytes(4000)
        path.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match=r"(?s)corrupt data.*resume with") as info:
        pretrain(tiny_config(f"data.uri={world}", "train.max_steps=8"), progress=lambda _: None)
    assert "part-0000" in str(info.value)
    # One of our errors (the CLI prints it as one message), not Ray's worker tracebacks.
    assert isinstance(info.value, MpmaeError) and "Traceback" not in str(info.value)
    kept = _checkpoints(Path(cfg.storage.root) / "t")
    assert load_checkpoint(kept[-1])["step"] == 4


def test_unreachable_store_fails_before_any_cluster_work(tiny_config, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-print")
    cfg = tiny_config("storage.root=s3://runs/x", "storage.endpoint_url=http://127.0.0.1:9",
                      "storage.retries=2")
    with pytest.raises(StorageError, match=r"127\.0\.0\.1:9") as info:
        pretrain(cfg, progress=lambda _: None)
    assert "do-not-print" not in str(info.value)
    assert StorageOptions.from_env().secret_access_key == "do-not-print"


def test_bad_config_is_rejected_by_the_cli(capsys):
    assert main(["pretrain", "--set", "model.siz=tiny"]) == 2
    err = capsys.readouterr().err
    assert "model.siz" in err and "did you mean 'model.size'" in err
