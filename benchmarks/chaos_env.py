"""The world `benchmarks/chaos.py` breaks: real parts on loopback and the commands it runs.

An S3 endpoint (moto, in a process of its own) with a tiny synthetic world on it and the
same world in a local folder; mpmae's commands run as a user runs them (``python -m
mpmae.cli …``, in a process of their own, with a clean environment and their own
``MPMAE_HOME``), their output read line by line with the time each line came.
"""

from __future__ import annotations

import hashlib
import os
import queue
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from moto_endpoint import BUCKET, LOCAL_KEYS, REGION, moto_endpoint

from mpmae.data.sources.synth import synthesize
from mpmae.storage import StorageOptions, resolve

# The proxy and the stack's helpers (infra/: scripts, not a package; moto_endpoint put
# infra/local on the path).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "infra"))
from infra_modules import load

ROOT = Path(__file__).resolve().parents[1]
s3_proxy = load("infra/local/s3_proxy.py")
TILES, SIZE, DOWNSTREAM = 96, 16, 40
# A tiny run: two workers, small tiles, a line per step (the steps are read off it).
PRETRAIN = ["data.tile_size=16", "model.img_size=16", "train.batch_size=4", "train.log_every=1",
            "train.figure_every=0", "train.probe_every=0", "scaling.num_workers=2",
            "scaling.cpus_per_worker=0.5", "scaling.data_cpus=0.5",
            "mlflow.system_metrics=false"]


@dataclass
class Command:
    """A running mpmae command: its lines as they come, each with its arrival time."""

    process: subprocess.Popen
    lines: queue.Queue = field(default_factory=queue.Queue)
    seen: list[tuple[float, str]] = field(default_factory=list)

    def wait_for(self, text: str, timeout_s: float) -> float:
        """The time the first line holding ``text`` came; raises if it never does."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(text in line for _, line in self.seen):
                return next(t for t, line in self.seen if text in line)
            try:
                self.seen.append(self.lines.get(timeout=1))
            except queue.Empty:
                if self.process.poll() is not None and self.lines.empty():
                    break
        raise RuntimeError(f"no line with {text!r} within {timeout_s:.0f} s; last lines: "
                           f"{[line for _, line in self.seen[-5:]]}")

    def finish(self, timeout_s: float) -> tuple[int, list[str]]:
        """(exit code, every line) once it has ended; killed past ``timeout_s``."""
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        time.sleep(0.2)  # the reader threads' last lines
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return self.process.returncode, [line for _, line in self.seen]


class World:
    """The endpoint, the worlds on it and in a folder, and a way to run commands."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self._running = ExitStack()
        self.endpoint, _ = self._running.enter_context(moto_endpoint(work))
        self.local = work / "world"
        self.s3 = f"s3://{BUCKET}/world"
        for uri, options in ((str(self.local), None), (self.s3, self.options())):
            synthesize(uri, tiles=TILES, size=SIZE, seed=0, downstream_tiles=DOWNSTREAM,
                       tiles_per_shard=16, storage=options, progress=lambda _: None)

    def close(self) -> None:
        self._running.close()

    def options(self, endpoint: str | None = None) -> StorageOptions:
        return StorageOptions(endpoint or self.endpoint, REGION,
                              LOCAL_KEYS["AWS_ACCESS_KEY_ID"],
                              LOCAL_KEYS["AWS_SECRET_ACCESS_KEY"])

    def proxy(self, weather, seed: int = 0):
        """A proxy in front of the endpoint, started: (proxy, its endpoint URL)."""
        proxy = s3_proxy.S3Proxy(self.endpoint, weather, seed=seed)
        return proxy, proxy.start()

    def env(self, name: str, endpoint: str | None = None) -> dict[str, str]:
        """A newcomer's environment, its own ``MPMAE_HOME``, S3 at ``endpoint``."""
        return newcomer_env(self.work / "homes" / name, self.options(endpoint))

    def release(self) -> Path:
        """A small MMEarth release (the official HDF5 layout) in a local folder."""
        from fake_mmearth import example_arrays, write_mmearth_release  # tests/, on the path

        folder = self.work / "release"
        if not folder.exists():
            arrays, ids, types = example_arrays(24, SIZE, seed=0)
            write_mmearth_release(folder, arrays, ids, types,
                                  {"train": range(16), "val": range(16, 20),
                                   "test": range(20, 24)})
        return folder

    def start(self, args: list[str], env: dict[str, str]) -> Command:
        return start_command(args, env, self.work)

    def run(self, args: list[str], env: dict[str, str], timeout_s: float = 600):
        """Run a command to its end: (exit code, lines, seconds)."""
        began = time.monotonic()
        code, lines = self.start(args, env).finish(timeout_s)
        return code, lines, time.monotonic() - began

    def fingerprint(self, uri: str) -> str:
        """The dataset's files by name and content: a changed or lost file changes it."""
        where = resolve(uri, None if uri.startswith("/") else self.options())
        digest = hashlib.sha256()
        for name in where.list_files():
            digest.update(name.encode() + where.join(name).read_bytes())
        return digest.hexdigest()


def newcomer_env(home: Path, options: StorageOptions) -> dict[str, str]:
    """This environment less Ray's, MLflow's and AWS's settings, with its own
    ``MPMAE_HOME`` (``home``), this checkout's package and S3 as ``options`` say."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI") and not k.startswith("AWS_")}
    env["MPMAE_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "platform"),
                                                      env.get("PYTHONPATH")]))
    env.update(options.as_env())
    return env


def start_command(args: list[str], env: dict[str, str], cwd: Path) -> Command:
    """``python -m mpmae.cli ARGS`` started in ``cwd``, its lines read as they come."""
    process = subprocess.Popen([sys.executable, "-m", "mpmae.cli", *args], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=cwd)
    command = Command(process)
    for stream in (process.stdout, process.stderr):
        threading.Thread(target=_pump, args=(stream, command.lines), daemon=True).start()
    return command


def pretrain_args(run_name: str, data: str, *overrides: str) -> list[str]:
    settings = [f"data.uri={data}", f"run_name={run_name}", *PRETRAIN, *overrides]
    return ["pretrain", *[a for s in settings for a in ("--set", s)]]


def outcome(code: int, lines: list[str]) -> str:
    """``finished``, ``one clear line`` (exit 2 or 75, the last line ours, no traceback)
    or what else happened."""
    if code == 0:
        return "finished"
    last = next((line for line in reversed(lines) if line.strip()), "")
    if code in (2, 75) and last.startswith("mpmae:") and not any(
            line.startswith("Traceback") for line in lines):
        return "one clear line"
    return f"exit {code}: {last[:160]}"


def last_line(lines: list[str]) -> str:
    return next((line.strip() for line in reversed(lines) if line.strip()), "")


def _pump(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put((time.monotonic(), line.rstrip("\n")))
