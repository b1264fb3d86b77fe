"""Faults × verbs: each fault a user meets on spot GPUs and a far-away S3, done to a real mpmae
command on loopback; prints one JSON row per (fault, verb) and then a table.

Each row: what happened (``finished``: the command, or its re-run, completed; ``one clear
line``: it stopped with one line of ours and no traceback), the steps lost (trained before
the fault and trained again after it), the data lost (dataset files changed or gone, and
checkpoints unreadable), and the time to recover (fault → the command's exit, or → its
error). Real parts only: moto S3 behind ``infra/local/s3_proxy.py``, a real ``mlflow
server`` stopped and started by its pid, a real Ray head started beside ours.

    python benchmarks/chaos.py                  # every row (about 15 min on 2 cores)
    python benchmarks/chaos.py --only s3_down_verify spot_pretrain
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from chaos_env import BUCKET, ROOT, World, last_line, outcome, pretrain_args, s3_proxy
from machine import machine
from stack import answers  # infra/local, on the path through chaos_env

sys.path.insert(0, str(ROOT / "tests"))
from mlflow_server import stoppable_mlflow_server
from ray_head import TRAIN_RESOURCE, multinode_cluster, ray_head

from mpmae.data.sources.synth_geobench import CLASSIFICATION, GEOBENCH_DIR, SEGMENTATION

STEP = re.compile(r"\bstep (\d+)/")
STORM = dict(latency_s=0.0, slowdown=0.15, reset=0.05)  # the throttling proxy


def row(fault: str, verb: str, result: str, *, steps_lost=None, data_lost=0,
        recover_s: float | None = None, **details) -> dict:
    return {"fault": fault, "verb": verb, "outcome": result, "steps_lost": steps_lost,
            "data_lost": data_lost, "recover_s": None if recover_s is None else
            round(recover_s, 1), **details}


def steps_of(lines: list[str]) -> list[int]:
    return [int(m.group(1)) for line in lines if (m := STEP.search(line))]


def spot_pretrain(world: World) -> dict:
    """SIGTERM (a spot node's notice) to `mpmae pretrain` at step 3 or later; the same
    command again."""
    env, before = world.env("spot"), world.fingerprint(str(world.local))
    command = world.start(pretrain_args("spot", str(world.local), "train.max_steps=2000",
                                        "train.checkpoint_every=1000"), env)
    command.wait_for("step 3/", 300)
    noticed = time.monotonic()
    command.process.send_signal(signal.SIGTERM)
    code, lines = command.finish(180)
    took = time.monotonic() - noticed
    stopped = max(steps_of(lines), default=0)
    if code != 75:
        return row("SIGTERM (spot notice)", "pretrain", outcome(code, lines), recover_s=took)
    code, again, _ = world.run(pretrain_args("spot", str(world.local),
                                             f"train.max_steps={stopped + 2}"), env)
    resumed = min(steps_of(again), default=1)
    return row("SIGTERM (spot notice)", "pretrain", outcome(code, again),
               steps_lost=stopped - (resumed - 1), recover_s=took,
               data_lost=int(world.fingerprint(str(world.local)) != before),
               note=f"exit 75 at step {stopped}; the re-run began at step {resumed}")


def spot_finetune(world: World) -> dict:
    """SIGTERM to `mpmae evaluate --protocol finetune` after its second epoch; again."""
    import torch

    cells = world.work / "cells"
    env = world.env("finetune")
    sets = [f"finetune.work_dir={cells}", "unet.epochs=30", "unet.frozen_epochs=1",
            "unet.batch_size=4", "unet.micro_batch=2", "finetune.loader_workers=0",
            "unet.figure_samples=0", "mlflow.system_metrics=false"]
    args = ["evaluate", "random:atto", str(world.local / GEOBENCH_DIR / SEGMENTATION),
            "--protocol", "finetune", "--seeds", "1", *[a for s in sets for a in ("--set", s)]]
    command = world.start(args, env)
    deadline = time.monotonic() + 300
    while not list(cells.rglob("epoch-0001.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    noticed = time.monotonic()
    command.process.send_signal(signal.SIGTERM)
    code, lines = command.finish(180)
    took = time.monotonic() - noticed
    if code != 75:
        return row("SIGTERM (spot notice)", "evaluate finetune", outcome(code, lines),
                   recover_s=took)
    state = torch.load(max(cells.rglob("epoch-*.pt")), weights_only=True)
    code, again, _ = world.run(args, env)
    result = json.loads(next(cells.rglob("result.json")).read_text())
    epochs = [h["epoch"] for h in result["history"]]
    return row("SIGTERM (spot notice)", "evaluate finetune", outcome(code, again),
               steps_lost=0 if epochs == sorted(set(epochs)) else None, recover_s=took,
               note=f"exit 75 with a checkpoint at epoch {state['epoch'] + 1} step "
                    f"{state.get('batch')}; resumed there, epochs {epochs[0]}..{epochs[-1]} "
                    "each once")


def s3_throttle_verify(world: World, runs: int = 5) -> dict:
    """`mpmae data verify` through 15 % 503 SlowDown and 5 % connection resets, 5 times."""
    results, struck = [], 0
    for seed in range(runs):
        proxy, endpoint = world.proxy(s3_proxy.Weather(**STORM), seed=seed)
        try:
            code, lines, _ = world.run(["data", "verify", world.s3],
                                       world.env("verify", endpoint), timeout_s=300)
        finally:
            proxy.stop()
        results.append(outcome(code, lines))
        struck += proxy.counts.slowdowns + proxy.counts.resets
    passed = results.count("finished")
    return row("S3 503 15 % + resets 5 %", "data verify",
               "finished" if passed == runs else f"{passed}/{runs} finished: {results}",
               note=f"{passed}/{runs} runs passed; {struck} requests throttled or reset")


def s3_throttle_pretrain(world: World) -> dict:
    """A short pretrain streaming from S3 through the same storm."""
    proxy, endpoint = world.proxy(s3_proxy.Weather(**STORM), seed=7)
    try:
        code, lines, took = world.run(pretrain_args("storm", world.s3, "train.max_steps=12"),
                                      world.env("storm", endpoint))
    finally:
        proxy.stop()
    return row("S3 503 15 % + resets 5 %", "pretrain", outcome(code, lines),
               steps_lost=0 if code == 0 else None,
               note=f"{proxy.counts.slowdowns} throttled, {proxy.counts.resets} reset of "
                    f"{proxy.counts.requests} requests; {took:.0f} s")


def s3_down(verb: str, args: Callable[[World], list[str]]) -> Callable[[World], dict]:
    def scenario(world: World) -> dict:
        proxy, endpoint = world.proxy(s3_proxy.Weather(down=True))
        try:
            code, lines, took = world.run(args(world), world.env(f"down-{verb}", endpoint),
                                          timeout_s=600)
        finally:
            proxy.stop()
        return row("S3 endpoint down", verb, outcome(code, lines), recover_s=took,
                   note=last_line(lines)[:200])
    scenario.__doc__ = f"`mpmae {verb}` against an S3 endpoint that resets every connection."
    return scenario


def mlflow_outage_pretrain(world: World) -> dict:
    """The tracking server stopped at step 10 and started again 30 s later; the step rate
    meanwhile against a run without an outage."""
    import mlflow

    steps = 80
    with stoppable_mlflow_server(world.work / "mlflow") as server:
        tracking = f"mlflow.tracking_uri={server.url}"
        base = world.start(pretrain_args("calm", str(world.local), f"train.max_steps={steps}",
                                         tracking), world.env("calm"))
        baseline = outcome(*base.finish(900))
        command = world.start(pretrain_args("outage", str(world.local),
                                            f"train.max_steps={steps}", tracking),
                              world.env("outage"))
        stopped_at = command.wait_for("step 10/", 600)
        server.stop()
        time.sleep(30)
        server.start()
        back_at = time.monotonic()
        code, lines = command.finish(900)
        run_id = json.loads((world.work / "homes" / "outage" / "runs" / "outage" / "run.json")
                            .read_text())["mlflow_run_id"]
        status = mlflow.MlflowClient(server.url).get_run(run_id).info.status
    during = _rate(command.seen, stopped_at, back_at)
    calm = _rate(base.seen, *_window(base.seen, 10, during["steps"]))
    ratio = during["per_s"] / calm["per_s"] if calm["per_s"] else None
    return row("MLflow server down 30 s", "pretrain",
               outcome(code, lines), steps_lost=0, recover_s=None, mlflow_status=status,
               baseline=baseline,
               step_rate_ratio=None if ratio is None else round(ratio, 3),
               note=f"{during['steps']} steps while it was away at {during['per_s']:.2f}/s; "
                    f"the same steps without an outage {calm['per_s']:.2f}/s")


def _rate(seen: list[tuple[float, str]], start: float, end: float) -> dict:
    inside = [(t, int(m.group(1))) for t, line in seen
              if start <= t <= end and (m := STEP.search(line))]
    if len(inside) < 2:
        return {"steps": 0, "per_s": 0.0}
    (t0, s0), (t1, s1) = inside[0], inside[-1]
    return {"steps": s1 - s0, "per_s": (s1 - s0) / max(t1 - t0, 1e-9)}


def _window(seen: list[tuple[float, str]], first: int, count: int) -> tuple[float, float]:
    """The times the step lines ``first`` and ``first + count`` came."""
    times = {int(m.group(1)): t for t, line in seen if (m := STEP.search(line))}
    return times.get(first, 0.0), times.get(first + count, max(times.values(), default=0.0))


def s3_down_submit(world: World) -> dict:
    """`mpmae submit pretrain` to a Ray head (token auth) whose job reads S3 that is down:
    the job's one line comes back through `submit`, which exits as the job did."""
    proxy, endpoint = world.proxy(s3_proxy.Weather(down=True))
    try:
        with ray_head(num_cpus=2) as head:
            env = {**world.env("down-submit", endpoint), "RAY_AUTH_TOKEN": head.token}
            args = ["submit", "--address", head.address, "--working-dir", str(ROOT),
                    "--forward-secrets",
                    *pretrain_args("down-submit", world.s3)]
            code, lines, took = world.run(args, env, timeout_s=600)
    finally:
        proxy.stop()
    return row("S3 endpoint down", "submit pretrain", outcome(code, lines), recover_s=took,
               note=last_line(lines)[:200])


def mlflow_down_at_start(world: World) -> dict:
    """`mpmae pretrain` against a tracking server that is not there."""
    with stoppable_mlflow_server(world.work / "mlflow-gone") as server:
        server.stop()
        code, lines, took = world.run(pretrain_args("gone", str(world.local),
                                                    "train.max_steps=4",
                                                    f"mlflow.tracking_uri={server.url}"),
                                      world.env("gone"), timeout_s=300)
    return row("MLflow server down at start", "pretrain", outcome(code, lines), recover_s=took,
               note=last_line(lines)[:200])


def other_ray_pretrain(world: World) -> dict:
    """A user's own Ray head running on the machine, recorded where Ray looks for it."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))  # Ray's socket paths: short
    try:
        with ray_head() as head:
            (ray_tmp / "ray").mkdir()
            (ray_tmp / "ray" / "ray_current_cluster").write_text(head.gcs_address)
            env = {**world.env("other-ray"), "RAY_TMPDIR": str(ray_tmp)}
            code, lines, took = world.run(pretrain_args("beside", str(world.local),
                                                        "train.max_steps=4"), env)
            alive = answers(f"{head.address}/api/jobs/",
                            {"Authorization": f"Bearer {head.token}"})
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    return row("another Ray on the machine", "pretrain", outcome(code, lines),
               note=f"ran beside it in {took:.0f} s; the user's head "
                    f"{'still answers' if alive else 'DOES NOT ANSWER'} afterwards")


def checkpoint_write_fails(world: World) -> dict:
    """S3 answers every write of the step-4 checkpoint with 500, runs on S3."""
    from mpmae.storage import resolve

    proxy, endpoint = world.proxy(s3_proxy.Weather(
        latency_s=0, fail_writes=-1, write_paths=r"/checkpoint_step-00000004_"))
    runs = f"s3://{BUCKET}/runs"
    try:
        code, lines, took = world.run(pretrain_args(
            "ckpt", str(world.local), "train.max_steps=8", "train.checkpoint_every=2",
            f"storage.root={runs}", "storage.retries=1"), world.env("ckpt", endpoint))
    finally:
        proxy.stop()
    kept = sorted(int(name.split("-")[1].split("_")[0]) for name in
                  resolve(f"{runs}/ckpt", world.options()).list_files("/state.pt")
                  if name.startswith("checkpoint_step-"))
    warned = [line for line in lines if "could not be written" in line]
    return row("checkpoint write fails (S3 500)", "pretrain", outcome(code, lines),
               steps_lost=0 if code == 0 else None,
               note=f"{len(warned)} warning line(s); checkpoints kept: steps {kept}; "
                    f"{proxy.counts.failed_writes} writes failed; {took:.0f} s")


def node_loss_pretrain(world: World) -> dict:
    """A worker node's raylet killed at step 5 of a run with one training worker on each of
    two nodes (a head and nodes on this machine, token auth); a new node joins in its place
    and ``scaling.max_failures`` lets Ray Train restart the group. The steps are read off
    the workers' tile records (``data.record_tiles``): a cluster's worker output reaches
    the driver late."""
    from mpmae.storage import resolve
    from mpmae.train.tile_record import RECORD_DIR

    records = resolve(f"s3://{BUCKET}/runs/lost", world.options()).join(RECORD_DIR)
    with multinode_cluster(2) as cluster:
        env = {k: v for k, v in world.env("node-loss").items() if not k.startswith("RAY_")}
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(cluster.head.token_file))
        command = world.start(pretrain_args(
            "lost", world.s3, "train.max_steps=9", "train.checkpoint_every=2",
            "data.record_tiles=true", f"storage.root=s3://{BUCKET}/runs",
            f"scaling.address={cluster.head.gcs_address}",
            f"scaling.accelerator_resource={TRAIN_RESOURCE}", "scaling.max_failures=2"), env)
        first = _recorded_until(records, command, lambda rs: max(r["step"] for r in rs) >= 5)
        lost_at = time.monotonic()
        cluster.replace(cluster.workers[1])
        attempts = {r["attempt"] for r in first}
        _recorded_until(records, command, lambda rs: any(r["attempt"] not in attempts
                                                         for r in rs))
        recovered = time.monotonic() - lost_at
        code, lines = command.finish(600)
    done = _records(records)
    last = max(r["step"] for r in done if r["attempt"] in attempts)
    again = min(r["step"] for r in done if r["attempt"] not in attempts)
    return row("worker node lost (raylet killed)", "pretrain", outcome(code, lines),
               steps_lost=last - (again - 1), recover_s=recovered,
               note=f"lost at step {last}; the restarted group began at step {again} "
                    f"(checkpoint every 2); recover_s: to its first recorded step")


def _records(folder) -> list[dict]:
    return [json.loads(folder.join(name).read_bytes()) for name in folder.list_files(".json")]


def _recorded_until(folder, command, done: Callable[[list[dict]], bool],
                    timeout_s: float = 600) -> list[dict]:
    """The tile records once ``done`` says so of them; raises past ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and command.process.poll() is None:
        if (found := _records(folder)) and done(found):
            return found
        time.sleep(0.5)
    raise RuntimeError(f"the run's tile records never got there (exit "
                       f"{command.process.poll()})")


SCENARIOS: dict[str, Callable[[World], dict]] = {
    "spot_pretrain": spot_pretrain,
    "spot_finetune": spot_finetune,
    "s3_throttle_verify": s3_throttle_verify,
    "s3_throttle_pretrain": s3_throttle_pretrain,
    "s3_down_verify": s3_down("data verify", lambda w: ["data", "verify", w.s3]),
    "s3_down_pretrain": s3_down("pretrain", lambda w: pretrain_args("down", w.s3)),
    "s3_down_synth": s3_down("data synth", lambda w: ["data", "synth", f"{w.s3}-new",
                                                      "--tiles", "32", "--size", "16"]),
    "s3_down_inspect": s3_down("data inspect", lambda w: ["data", "inspect", w.s3]),
    "s3_down_convert": s3_down("data convert", lambda w: [  # a release to S3, Ray tasks
        "data", "convert", str(w.release()), f"s3://{BUCKET}/converted"]),
    "s3_down_submit": s3_down_submit,
    "s3_down_tune": s3_down("tune", lambda w: [
        "tune", *[a for s in (f"pretrain.data.uri={w.s3}", "sweep_name=down",
                              "pretrain.train.probe_every=5") for a in ("--set", s)]]),
    "s3_down_evaluate": s3_down("evaluate", lambda w: [  # a run's encoder, runs on S3
        "evaluate", "some-run", str(w.local / GEOBENCH_DIR / CLASSIFICATION), "--protocol",
        "knn", "--set", f"storage.root=s3://{BUCKET}/runs"]),
    "mlflow_outage_pretrain": mlflow_outage_pretrain,
    "mlflow_down_at_start": mlflow_down_at_start,
    "other_ray_pretrain": other_ray_pretrain,
    "checkpoint_write_fails": checkpoint_write_fails,
    "node_loss_pretrain": node_loss_pretrain,
}


def table(rows: list[dict]) -> str:
    head = ("fault", "verb", "outcome", "steps_lost", "data_lost", "recover_s")
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join("—" if r.get(k) is None else str(r[k]) for k in head) + " |"
              for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), default=None)
    parser.add_argument("--work", default=None, help="folder to work in (default: temporary)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="mpmae-chaos-"))
    world = World(work)
    rows = []
    try:
        for name in args.only or SCENARIOS:
            began = time.monotonic()
            try:
                result = SCENARIOS[name](world)
            except Exception as e:  # a scenario that breaks is a row too, not the end
                result = row(name, "—", f"scenario error: {type(e).__name__}: {e}"[:300])
            result.update(scenario=name, wall_s=round(time.monotonic() - began, 1))
            rows.append(result)
            print(json.dumps(result), flush=True)
    finally:
        world.close()
    print(json.dumps({"machine": machine(), "rows": rows}, indent=1))
    print(table(rows))


if __name__ == "__main__":
    main()
