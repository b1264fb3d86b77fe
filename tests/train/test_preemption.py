"""Preemption without lost work: a notice (SIGTERM to the command, a file, a URL) ends the
run at the current step with a checkpoint there, exit 75 and one line; the same command
resumes at that step."""

from __future__ import annotations

import glob
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mpmae.config import ConfigError, load_config
from mpmae.storage import resolve
from mpmae.train.config import PretrainConfig
from mpmae.train.preemption import NOTICE_FILE, NoticeWatcher, notice_on_signals


def wait_for(predicate, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_file_that_appears_is_a_notice(tmp_path):
    notice = tmp_path / "spot-notice"
    watcher = NoticeWatcher(str(notice), None)
    try:
        time.sleep(1.5)
        assert not watcher.noticed
        notice.write_text("terminate")
        assert wait_for(lambda: watcher.noticed)
    finally:
        watcher.close()


def test_a_url_that_answers_200_is_a_notice():
    due = threading.Event()

    class Metadata(BaseHTTPRequestHandler):
        def do_GET(self):  # 404 until the reclaim is announced, as EC2's metadata does
            self.send_response(200 if due.is_set() else 404)
            self.end_headers()
            self.wfile.write(b'{"action": "terminate"}' if due.is_set() else b"")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Metadata)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    watcher = NoticeWatcher(f"http://127.0.0.1:{server.server_port}/spot/instance-action", None)
    try:
        time.sleep(1.5)
        assert not watcher.noticed
        due.set()
        assert wait_for(lambda: watcher.noticed)
    finally:
        watcher.close()
        server.shutdown()


def test_a_signal_writes_the_run_folder_notice_that_rank_0_polls(tmp_path):
    run = resolve(tmp_path / "run")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / NOTICE_FILE).write_text("SIGTERM")  # an earlier preemption's
    before = signal.getsignal(signal.SIGTERM)
    with notice_on_signals(run):
        assert not (tmp_path / "run" / NOTICE_FILE).exists()  # a resume runs on
        watcher = NoticeWatcher("", run)
        os.kill(os.getpid(), signal.SIGTERM)
        assert (tmp_path / "run" / NOTICE_FILE).read_text() == "SIGTERM"
        assert wait_for(lambda: watcher.noticed)
        watcher.close()
    assert signal.getsignal(signal.SIGTERM) is before


def test_outside_the_main_thread_signals_are_left_alone(tmp_path):
    # A library caller may run pretrain on a thread of its own: no handler can be set there.
    seen = []

    def run() -> None:
        with notice_on_signals(resolve(tmp_path)) as notice:
            seen.append(notice.given)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert seen == [False]


def test_a_notice_source_is_a_path_or_an_http_url():
    with pytest.raises(ConfigError, match=r"train\.preemption_notice"):
        load_config(PretrainConfig, None, ["train.preemption_notice=s3://bucket/notice"])


def _pretrain(home: Path, *overrides: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    env["MPMAE_HOME"] = str(home)
    settings = ["data.synth_tiles=48", "data.tile_size=16", "model.img_size=16",
                "train.batch_size=4", "train.log_every=1", "train.checkpoint_every=1000",
                "train.figure_every=0", "scaling.num_workers=2", "scaling.cpus_per_worker=0.5",
                "scaling.data_cpus=0.5", "mlflow.system_metrics=false", "run_name=spot",
                *overrides]
    return subprocess.Popen(
        [sys.executable, "-c", "import sys, mpmae.cli; sys.exit(mpmae.cli.main())",
         "pretrain", *[a for s in settings for a in ("--set", s)]],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _lines(stream) -> queue.Queue:
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in stream], daemon=True).start()
    return lines


def _checkpoint_steps(home: Path) -> set[int]:
    found = glob.glob(str(home / "runs" / "spot" / "**" / "checkpoint.json"), recursive=True)
    return {json.loads(Path(p).read_text())["step"] for p in found}


@pytest.mark.ray
@pytest.mark.parametrize("notice", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_checkpoints_the_current_step_and_the_same_command_resumes_there(notice,
                                                                                 tmp_path):
    home = tmp_path / "home"
    run = _pretrain(home, "train.max_steps=2000")
    out = _lines(run.stdout)
    seen = ""
    deadline = time.monotonic() + 300
    while "step 3/" not in seen and time.monotonic() < deadline:
        try:
            seen += out.get(timeout=5)
        except queue.Empty:
            assert run.poll() is None, run.stderr.read()[-3000:]
    assert "step 3/" in seen, "the run never reached step 3"
    noticed = time.monotonic()
    run.send_signal(notice)
    try:
        run.wait(timeout=180)
    finally:
        run.kill()
    took = time.monotonic() - noticed
    errors = run.stderr.read()
    last = errors.strip().splitlines()[-1]
    print(f"notice to exit: {took:.1f} s")
    assert run.returncode == 75, errors[-3000:]
    assert last.startswith("mpmae: preempted at step ") and last.endswith(
        "run the same command to resume"), last
    step = int(last.removeprefix("mpmae: preempted at step ").split()[0])
    assert step >= 3 and max(_checkpoint_steps(home)) == step
    assert took < 120  # a spot node's notice is two minutes
    if notice == signal.SIGINT:
        return  # the resume below is the same for both

    again = _pretrain(home, f"train.max_steps={step + 2}")
    stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr[-3000:]
    assert "resuming run spot" in stdout
    assert f"step {step + 1}/" in stdout and "step 1/" not in stdout
    assert max(_checkpoint_steps(home)) == step + 2
