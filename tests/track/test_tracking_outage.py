"""A tracking server that goes away mid-run: training never waits on it, what it missed is
sent when it is back (or kept in the run folder), and the run is not failed for it."""

from __future__ import annotations

import json
import logging
import time

import mlflow
import pytest
from mlflow_server import free_port, stoppable_mlflow_server
from run_start import log_pretrain_encoder, start_pretrain_run

from mpmae.storage import resolve
from mpmae.track.runs import TrackingError, end_run, start_run
from mpmae.track.server_check import SHORT_HTTP
from mpmae.track.sink import UNSENT_DIR, UNSENT_METRICS, TrackingSink


def _wait_for(condition, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _logged(caplog, text: str) -> bool:
    return any(text in r.getMessage() for r in caplog.records)


@pytest.fixture
def server(tmp_path):
    with stoppable_mlflow_server(tmp_path / "server") as running:
        yield running


@pytest.fixture(autouse=True)
def _short_http_and_no_tracking_uri_left(monkeypatch):
    """The sink sets MLflow's short timeouts for its whole process: set them here, so that
    they end with the test."""
    for name, value in SHORT_HTTP.items():
        monkeypatch.setenv(name, value)
    yield
    while mlflow.active_run():
        mlflow.end_run("KILLED")
    mlflow.set_tracking_uri(None)


def _run_on(url: str) -> str:
    client = mlflow.MlflowClient(url)
    return client.create_run(client.create_experiment("outage")).info.run_id


def test_the_sink_keeps_calls_while_the_server_is_away_and_sends_them_when_it_is_back(
        server, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="mpmae.track.sink")
    run_id = _run_on(server.url)
    client = mlflow.MlflowClient(server.url)
    sink = TrackingSink(run_id, server.url, retry_s=0.5)
    sink.log_metrics({"loss": 10.0}, step=0)
    _wait_for(lambda: client.get_metric_history(run_id, "loss"))
    server.stop()
    started = time.monotonic()
    for step in range(1, 101):
        sink.log_metrics({"loss": 10.0 - step / 100, "lr": 0.1}, step)
    sink.log_figure(b"\x89PNG not really", step=100)
    assert time.monotonic() - started < 5  # queued, not sent: the training thread goes on
    _wait_for(lambda: _logged(caplog, "is not answering"))
    assert _logged(caplog, f"MLflow at {server.url} is not answering")
    server.start()
    assert sink.close(resolve(tmp_path / "run"), wait_s=60) is None
    assert _logged(caplog, "answers again")
    history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "loss"))
    assert history == [(step, 10.0 - step / 100) for step in range(101)]
    assert [m.step for m in client.get_metric_history(run_id, "lr")] == list(range(1, 101))
    figures = [a.path for a in client.list_artifacts(run_id, "reconstructions")]
    assert figures == ["reconstructions/step_000100.png"]
    assert not (tmp_path / "run" / UNSENT_DIR).exists()


def test_what_a_gone_server_never_took_is_written_to_the_run_folder(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="mpmae.track.sink")
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    sink = TrackingSink("some-run", url, retry_s=0.2)
    sink.log_metrics({"loss": 1.5}, step=7)
    sink.log_figure(b"png bytes", step=7)
    sink.log_metrics({"loss": 1.25}, step=8)
    where = sink.close(resolve(tmp_path / "run"), wait_s=2)
    folder = tmp_path / "run" / UNSENT_DIR
    assert where == resolve(folder).uri
    rows = [json.loads(line) for line in (folder / UNSENT_METRICS).read_text().splitlines()]
    assert [(r["key"], r["value"], r["step"]) for r in rows] == [("loss", 1.5, 7),
                                                                ("loss", 1.25, 8)]
    assert all(r["timestamp"] > 0 for r in rows)
    assert (folder / "reconstructions" / "step_000007.png").read_bytes() == b"png bytes"
    assert _logged(caplog, f"they are in {where}")


def test_a_full_queue_drops_the_oldest_calls_and_says_so(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="mpmae.track.sink")
    sink = TrackingSink("some-run", f"http://127.0.0.1:{free_port()}", capacity=3,
                        retry_s=0.2)
    for step in range(10):
        sink.log_metrics({"loss": float(step)}, step)
    sink.close(resolve(tmp_path), wait_s=1)
    rows = (tmp_path / UNSENT_DIR / UNSENT_METRICS).read_text().splitlines()
    # The thread may hold one call in flight when the queue overflows: the newest are kept.
    assert [json.loads(r)["step"] for r in rows][-3:] == [7, 8, 9]
    assert _logged(caplog, "the oldest metrics and figures are dropped")
    assert _logged(caplog, "were dropped: the queue was full")


def test_a_server_that_does_not_answer_at_start_is_one_plain_error(make_cfg):
    url = f"http://127.0.0.1:{free_port()}"
    cfg = make_cfg(**{"mlflow.tracking_uri": url})
    started = time.monotonic()
    with pytest.raises(TrackingError, match=f"MLflow at {url} is not answering"):
        start_run(cfg.mlflow, experiment=cfg.name, run_name="r", config=cfg, model=cfg.model)
    assert time.monotonic() - started < 30  # not MLflow's minutes of retries


def test_a_server_away_at_the_end_leaves_the_run_running_not_failed(server, make_cfg,
                                                                      release_dir, caplog):
    caplog.set_level(logging.WARNING)
    cfg = make_cfg(**{"mlflow.tracking_uri": server.url})
    run_id = start_pretrain_run(cfg, run_name="away-at-the-end")
    server.stop()
    assert log_pretrain_encoder(release_dir, cfg) is None
    assert _logged(caplog, "the encoder was not logged")
    end_run("FINISHED")
    assert mlflow.active_run() is None
    assert _logged(caplog, f"run {run_id} stays RUNNING there instead of FINISHED")
    server.start()
    assert mlflow.MlflowClient(server.url).get_run(run_id).info.status == "RUNNING"
