"""The GPU check: one command, under 8 minutes on one H100/H200, printing one JSON object.

    python benchmarks/gpu_check.py               # on a CUDA machine
    python benchmarks/gpu_check.py --cpu-smoke   # the same plumbing on a CPU, tiny sizes

The JSON follows a line ``=== gpu_check JSON ===`` on stdout (Ray prints the training
workers' progress there too) and is also written to ``--out`` (or ``$OUT/gpu_check.json``).

Sections, each in its own time box so one failure keeps the others' figures:
- ``equivalence``: the encoder's CUDA equivalence tests (sparse path = dense-masked
  reference, fp32 without TF32), the stream's batches to the GPU through pinned memory
  (``tests/data/test_batch_transfer.py``) and a bf16-autocast tolerance check;
- ``bench_model``: ``benchmarks/bench_model.py`` in bf16, eager and ``torch.compile``;
- ``pretrain``: a short ``mpmae pretrain`` on the GPU with the real stream from a local
  synthetic world: tiles/s, data-wait fraction, GPU busy fraction (nvidia-smi samples),
  CPU cores used (all processes, from the system's CPU times);
- ``derived``: the CPU cores one GPU would need to be kept busy at the measured rate.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BF16_TOLERANCE = 0.05
JSON_MARKER = "=== gpu_check JSON ==="
sys.path.insert(0, str(Path(__file__).parent))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="run every section on the CPU with tiny sizes (checks the script)")
    parser.add_argument("--steps", type=int, default=300, help="pretraining steps")
    parser.add_argument("--batch", type=int, default=256, help="tiles per pretraining step")
    parser.add_argument("--tiles", type=int, default=2048, help="synthetic world's tiles")
    parser.add_argument("--out", type=Path, default=None,
                        help="also write the JSON here (default: $OUT/gpu_check.json when the "
                             "device machine's $OUT is set)")
    return parser.parse_args(argv)


def _python(args: list[str], timeout_s: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "platform"), os.environ.get("PYTHONPATH", "")]), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout_s)


def equivalence(smoke: bool) -> dict:
    """The encoder's and the stream's host→GPU CUDA tests, then the bf16 tolerance of the
    sparse path."""
    selection = "cpu and sparse_equals" if smoke else "cuda"
    done = _python(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", selection,
                    "tests/model/test_encoder.py", "tests/data/test_batch_transfer.py"],
                   timeout_s=150)
    counts = dict((k, int(n)) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error)",
                                                     done.stdout))
    return {"pytest": counts, "pytest_rc": done.returncode, "bf16": bf16_tolerance(smoke),
            **({"pytest_tail": done.stdout[-2000:]} if done.returncode else {})}


def bf16_tolerance(smoke: bool) -> dict:
    """Sparse path under bf16 autocast vs the dense-masked reference in fp32, per stage:
    the relative L2 error (judged) and the largest error over the stage's spread."""
    import torch

    from mpmae.model import DenseMaskedReference, build_encoder
    from mpmae.model.masking import random_patch_mask

    device = "cpu" if smoke else "cuda"
    torch.manual_seed(0)
    encoder = build_encoder("atto").to(device).eval()
    with torch.no_grad():  # off the init's special values (zero GRN γ/β, zero biases)
        for p in encoder.parameters():
            p.add_(0.02 * torch.randn_like(p))
    reference = DenseMaskedReference(encoder)
    x = torch.randn(8, 12, 56, 56, device=device)
    mask = random_patch_mask(8, (7, 7), 0.6, generator=torch.Generator().manual_seed(1),
                             device=device)
    with torch.no_grad():
        exact = reference.forward_features(x, mask)
        with torch.autocast(device, dtype=torch.bfloat16):
            fast = encoder.forward_features(x, mask)
    pairs = list(zip(fast, exact, strict=True))
    relative = [float((f.float() - e).norm() / e.norm()) for f, e in pairs]
    worst = [float((f.float() - e).abs().max() / e.std()) for f, e in pairs]
    # bf16 keeps 8 bits of mantissa (~0.4 %); through 14 blocks a few % is expected.
    return {"relative_l2_error_per_stage": relative, "max_error_over_std_per_stage": worst,
            "tolerance_relative_l2": BF16_TOLERANCE, "ok": max(relative) < BF16_TOLERANCE}


def bench_model(smoke: bool) -> dict:
    base = (["--device", "cpu", "--batch", "4", "--iters", "2", "--warmup", "1"] if smoke
            else ["--device", "cuda", "--batch", "256", "--bf16"])
    # Compiling on a 2-core CPU takes longer than the whole check may: the smoke run skips it.
    variants = (("bf16_eager", []),) if smoke else (("bf16_eager", []),
                                                    ("bf16_compile", ["--compile"]))
    out = {}
    for name, extra in variants:
        try:
            done = _python(["benchmarks/bench_model.py", *base, *extra, "--no-memory"],
                           timeout_s=200)
        except subprocess.TimeoutExpired:
            out[name] = {"error": "timed out after 200 s"}
            continue
        out[name] = (json.loads(done.stdout) if done.returncode == 0
                     else {"rc": done.returncode, "tail": done.stderr[-1500:]})
    return out


class GpuSampler:
    """``utilization.gpu`` from nvidia-smi every 0.5 s while running."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                text = subprocess.run(
                    ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                    capture_output=True, text=True, timeout=5).stdout
                self.samples.append(float(text.split()[0]) / 100)
            except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
                return  # no nvidia-smi here: no samples


def pretrain_run(args: argparse.Namespace) -> dict:
    """A short pretraining run on the real stream; figures from its MLflow metrics."""
    import mlflow
    import psutil

    from mpmae.config import override
    from mpmae.data.sources.synth import synthesize
    from mpmae.train.config import PretrainConfig
    from mpmae.train.launch import pretrain

    smoke = args.cpu_smoke
    tiles, size, steps, batch = (64, 16, 6, 4) if smoke else (args.tiles, 64, args.steps,
                                                               args.batch)
    cores = os.cpu_count() or 2
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MPMAE_HOME"] = tmp
        data = f"{tmp}/world"
        synthesize(data, tiles=tiles, size=size, progress=lambda _: None)
        tracking = f"sqlite:///{tmp}/mlflow.db"
        cfg = override(PretrainConfig(), {
            "data.uri": data, "data.tile_size": size, "storage.root": f"{tmp}/runs",
            "model.img_size": 16 if smoke else 56, "train.batch_size": batch,
            "train.max_steps": steps, "train.log_every": max(steps // 10, 1),
            "train.figure_every": 0, "train.probe_every": 0, "train.checkpoint_every": steps,
            "scaling.use_gpu": not smoke, "scaling.cpus_per_worker": 1 if smoke else 2,
            "scaling.data_cpus": 1 if smoke else max(cores - 4, 1),
            "mlflow.tracking_uri": tracking, "mlflow.system_metrics": False,
            "run_name": "gpu-check"})
        before, start = psutil.cpu_times(), time.perf_counter()
        with GpuSampler() as gpu:
            result = pretrain(cfg, progress=lambda _: None)
        wall, after = time.perf_counter() - start, psutil.cpu_times()
        client = mlflow.MlflowClient(tracking)
        history = {name: [m.value for m in client.get_metric_history(result.mlflow_run_id,
                                                                     name)]
                   for name in ("tiles_per_s", "data_wait_fraction")}
    busy = sum(after) - sum(before) - (after.idle - before.idle)
    steady = {k: v[len(v) // 2:] or v for k, v in history.items()}  # past warm-up/compile
    return {"steps": result.steps, "batch": batch, "wall_s": round(wall, 1),
            "tiles_per_s": statistics.median(steady["tiles_per_s"]),
            "data_wait_fraction": statistics.median(steady["data_wait_fraction"]),
            "gpu_busy_fraction": statistics.mean(gpu.samples) if gpu.samples else None,
            "cpu_cores_used": round(busy / wall, 2), "cpu_cores": cores}


def derived(run: dict) -> dict:
    """Cores a GPU needs: the cores used at the measured rate, scaled to a busy GPU."""
    busy = run.get("gpu_busy_fraction")
    if not busy:
        return {"cores_per_gpu": None, "why": "no GPU busy samples"}
    return {"cores_per_gpu_at_measured_rate": run["cpu_cores_used"],
            "cores_per_gpu_to_keep_it_busy": round(run["cpu_cores_used"] / busy, 1)}


def _timed(name: str, fn, report: dict) -> None:
    start = time.perf_counter()
    try:
        report[name] = fn()
    except Exception as e:  # one broken section must not cost the others' figures
        report[name] = {"error": f"{type(e).__name__}: {e}"[:2000]}
    report.setdefault("seconds", {})[name] = round(time.perf_counter() - start, 1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    from machine import machine

    if not args.cpu_smoke and not torch.cuda.is_available():
        print(json.dumps({"error": "no CUDA device: run on a GPU, or --cpu-smoke"}))
        return 2
    report: dict = {"machine": machine(), "torch": torch.__version__,
                    "smoke": args.cpu_smoke}
    _timed("equivalence", lambda: equivalence(args.cpu_smoke), report)
    _timed("bench_model", lambda: bench_model(args.cpu_smoke), report)
    _timed("pretrain", lambda: pretrain_run(args), report)
    if "error" not in report["pretrain"]:
        report["derived"] = derived(report["pretrain"])
    text = json.dumps(report, indent=2)
    out = args.out or (Path(os.environ["OUT"]) / "gpu_check.json" if os.environ.get("OUT")
                       else None)
    if out:
        out.write_text(text + "\n")
    # Ray prints the training workers' progress lines to this stdout too: a marker line
    # says where the JSON starts.
    print(f"{JSON_MARKER}\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
