"""Checkpoints that cannot be written: S3 answers the checkpoint writes of some steps with
errors (infra/local/s3_proxy.py in front of a real S3 endpoint, moto). The run trains on,
says so, and counts the storage retries as metrics; a resume uses the last intact checkpoint;
a preemption whose checkpoint fails says from which step the run will resume."""

from __future__ import annotations

from dataclasses import replace

import boto3
import pytest
from faults import s3_proxy

from mpmae.errors import Preempted
from mpmae.train.launch import pretrain

pytestmark = [pytest.mark.ray, pytest.mark.s3]
proxies = s3_proxy()


def _keys(opts, bucket_uri: str, prefix: str) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=opts.endpoint_url, region_name="us-east-1",
                      aws_access_key_id=opts.access_key_id,
                      aws_secret_access_key=opts.secret_access_key)
    listed = s3.list_objects_v2(Bucket=bucket_uri.removeprefix("s3://"), Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def test_failed_checkpoint_writes_are_survived_counted_and_resumed_past(
        ray_local, s3_endpoint, s3_bucket, tiny_config, mlflow_runs, monkeypatch, tmp_path):
    # The checkpoints of steps 4 and 6 fail (500 on every PUT), the rest of the store works.
    proxy = proxies.S3Proxy(s3_endpoint.endpoint_url, proxies.Weather(
        latency_s=0, fail_writes=-1, write_paths=r"/checkpoint_step-0000000[46]_"))
    try:
        endpoint = proxy.start()
        for name, value in replace(s3_endpoint, endpoint_url=endpoint).as_env().items():
            monkeypatch.setenv(name, value)
        lines = []
        settings = (f"storage.root={s3_bucket}/runs", f"storage.endpoint_url={endpoint}",
                    "storage.retries=1", "train.figure_every=0",
                    "train.max_failed_checkpoints=2")
        cfg = tiny_config(*settings, "train.max_steps=6")
        first = pretrain(cfg, progress=lines.append)
        assert proxy.counts.failed_writes >= 6  # 2 checkpoints × our 3 rounds
        assert lines[-1] == ("warning: the last checkpoint of this run could not be written "
                             "(the warnings above say why); the latest in "
                             f"{s3_bucket}/runs/t is step 2")
        client, _ = mlflow_runs(cfg)
        run = client.get_run(first.mlflow_run_id)
        assert run.info.status == "FINISHED"
        metrics = run.data.metrics  # the latest of each, logged by rank 0
        assert metrics["checkpoint_step"] == 2 and metrics["checkpoint_write_failures"] == 2
        # Each failed write: two rounds tried again after the 500, the third gave up.
        assert metrics["storage_retries/server_error"] == 4
        assert metrics["storage_retries/failed"] == 2
        states = [k for k in _keys(s3_endpoint, s3_bucket, "runs/t/checkpoint_")
                  if k.endswith("state.pt")]
        assert len(states) == 1 and "checkpoint_step-00000002_" in states[0]

        # The same command again, with a spot notice already there and every checkpoint
        # write failing: it resumes from step 2, is preempted, and cannot save that step.
        proxy.weather = proxies.Weather(latency_s=0, fail_writes=-1,
                                        write_paths="/checkpoint_step-")
        notice = tmp_path / "spot-notice"
        notice.write_text("terminate")
        with pytest.raises(Preempted, match=r"^preempted at step (\d+), but its checkpoint "
                                            r"at step \1 could not be written to "
                                            rf"{s3_bucket}/runs/t/checkpoint_step-.* "
                                            r"INTERNAL_FAILURE .*; run the same command to "
                                            r"resume from step 2$"):
            pretrain(tiny_config(*settings, "train.max_steps=8",
                                 f"train.preemption_notice={notice}"), progress=lines.append)
        steps = [m.step for m in client.get_metric_history(first.mlflow_run_id, "loss")]
        assert steps[:6] == [1, 2, 3, 4, 5, 6] and steps[6] == 3  # from the step-2 checkpoint
    finally:
        proxy.stop()


def test_the_streams_retries_are_in_the_runs_metrics(ray_local, s3_endpoint, s3_bucket,
                                                     tiny_config, mlflow_runs, monkeypatch):
    # The training data on S3, two of its GETs throttled (one SDK attempt each, so each
    # one reaches mpmae's rounds and is counted). They land in the driver's start-up reads
    # (the footers) or in the read tasks, never in the training workers: the run's metric
    # has them all the same (tests/data/test_s3_weather.py throttles the read tasks alone).
    from mpmae.data.sources.synth import synthesize

    world = f"{s3_bucket}/world"
    synthesize(world, tiles=48, size=16, seed=3, downstream_tiles=0, tiles_per_shard=16,
               storage=s3_endpoint, progress=lambda _: None)
    proxy = proxies.S3Proxy(s3_endpoint.endpoint_url, proxies.Weather(
        latency_s=0, throttle_reads=2, read_paths="/world/train/"))
    try:
        endpoint = proxy.start()
        for name, value in replace(s3_endpoint, endpoint_url=endpoint).as_env().items():
            monkeypatch.setenv(name, value)
        cfg = tiny_config(f"data.uri={world}", f"storage.endpoint_url={endpoint}",
                          "storage.retries=1", "train.figure_every=0", "train.max_steps=2")
        result = pretrain(cfg, progress=lambda _: None)
        assert proxy.counts.slowdowns == 2
        client, _ = mlflow_runs(cfg)
        metrics = client.get_run(result.mlflow_run_id).data.metrics
        # pyarrow reads the 503's body as SlowDown (throttled) or, on a ranged GET, as
        # SERVICE_UNAVAILABLE (a server error, as botocore counts it): one of the two.
        retried = metrics["storage_retries/throttled"] + metrics["storage_retries/server_error"]
        assert retried == 2 and metrics["storage_retries/failed"] == 0
    finally:
        proxy.stop()
