"""The two phases of bench_scale that measure mpmae's commands rather than the stream:

- ``first_step``: ``mpmae pretrain`` launched as a user launches it (``python -m mpmae.cli
  pretrain``, a process of its own, a tiny model) on each of several datasets in an arm,
  timed from the launch to its first "step 1/" progress line (Ray's start, the workers, the
  model, the open and the first batch: what a user waits for); the launches of the
  datasets take turns, so a load that changes during the run falls on each alike, and on
  S3 the requests made before that line are counted apart from the rest;
- ``embed``: the embed stage of ``mpmae evaluate random:atto`` (knn) on a synthetic GEO-Bench
  v1 dataset of ``samples`` samples: its CPU per sample, the stage run in this process as
  the command's Ray task runs it (same encoder, plan, batch).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import scale_phases as phases
from chaos_env import PRETRAIN, newcomer_env, pretrain_args, start_command

from mpmae.data.sources.synth_geobench import CLASSIFICATION, write_geobench_sets
from mpmae.evaluate.command.encoders import open_encoder
from mpmae.evaluate.command.plan import open_datasets, plan_datasets
from mpmae.evaluate.config import EvaluateConfig
from mpmae.evaluate.protocols.ray_tasks import embed_dataset
from mpmae.storage import StorageOptions, resolve

# One worker on the 2-core machine; one step (its line is the figure), then the run ends.
FIRST_STEP = ["scaling.num_workers=1", "train.max_steps=1"]


def first_steps(arm: phases.Arm, names: list[str], repeats: int = 1,
                timeout_s: float = 600) -> dict[str, dict]:
    """name → launch → the first optimizer step's line of ``mpmae pretrain`` on it, the
    fastest of ``repeats`` launches (a loaded machine only adds). Round by round each
    dataset is launched once, in turn; each command runs to its end (one step), so it
    stops its own Ray."""
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            runs[name].append(_launch(arm, name, timeout_s))
    return {name: {"first_step_s": min(r["first_step_s"] for r in done), "runs": done,
                   "settings": PRETRAIN + FIRST_STEP} for name, done in runs.items()}


def _launch(arm: phases.Arm, name: str, timeout_s: float) -> dict:
    with tempfile.TemporaryDirectory() as home:
        log = Path(home) / "requests.jsonl"
        with arm.session(str(log) if arm.upstream else "") as (storage, counted):
            env = newcomer_env(Path(home) / "home", storage or StorageOptions())
            args = pretrain_args(f"first-step-{name}", arm.uri(name), *FIRST_STEP)
            began, began_wall = time.monotonic(), time.time()
            command = start_command(args, env, Path(home))
            try:
                step_s = command.wait_for("step 1/", timeout_s) - began
            finally:
                code, lines = command.finish(timeout_s)
            ended_s = time.monotonic() - began
        if code != 0:
            raise RuntimeError(f"mpmae pretrain exited {code}: {lines[-5:]}")
        if log.exists():
            counted["requests_before_step"] = _requests_before(log, began_wall + step_s)
    return {**counted, "first_step_s": round(step_s, 3), "ended_s": round(ended_s, 3)}


def _requests_before(log: Path, until: float) -> dict[str, int]:
    """The requests in the proxy's log that came before ``until`` (wall clock), by method."""
    counts: dict[str, int] = {}
    for line in log.read_text().splitlines():
        request = json.loads(line)
        if request["t"] <= until:
            counts[request["method"]] = counts.get(request["method"], 0) + 1
    return counts


def embed(work: Path, samples: int, size: int) -> dict:
    """The embed stage of ``mpmae evaluate random:atto <synth-landscape> --protocol knn``
    on ``samples`` synthetic samples of ``size`` px: CPU (every thread of this process:
    torch's too) and wall per sample embedded."""
    root = work / f"geobench-{samples}"
    write_geobench_sets(resolve(str(root)), samples, size, seed=0, progress=lambda _: None)
    cfg = EvaluateConfig(protocol="knn")
    encoder = open_encoder("random:atto")
    [plan] = plan_datasets(encoder, open_datasets([str(root / "geobench" / CLASSIFICATION)]),
                           cfg, lambda _: None)
    # the samples the command embeds: every one a partition trains, validates or tests on
    names = tuple(sorted(set(plan.test).union(*plan.trains.values(), *plan.valids.values())))
    cpu, began = time.process_time(), time.perf_counter()
    embed_dataset(encoder.module, str(plan.dataset.folder.resolve()), names, plan.match,
                  plan.stats, cfg.embed_batch)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - began
    return {"samples": len(names), "size": size, "embed_batch": cfg.embed_batch,
            "cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
            "core_ms_per_sample": round(1e3 * cpu / len(names), 3)}
