"""Sparse-masked MP-MAE vs the dense-masked reference: speed and memory, as JSON.

Both run the same weights on the same masks, one forward+backward per timed step:
(a) the whole MP-MAE (encoder, decoder, every head and loss of the pretext set) and
(b) the encoder alone (last stage, squared-mean loss). Steps of the two implementations
are interleaved so that load from other processes hits both alike; the median (and the
fastest step, the better estimate on a shared machine) is reported. Peak memory is
measured per case in a fresh process (CPU: peak RSS; CUDA:
``torch.cuda.max_memory_allocated``).

    python benchmarks/bench_model.py                      # 2-core CPU defaults
    python benchmarks/bench_model.py --device cuda --bf16 --compile --batch 256
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import statistics
import time

import torch

from mpmae.model import DenseMaskedReference, build_mpmae
from mpmae.model.choices import num_kept

CASES = (
    ("mpmae", "sparse"),
    ("mpmae", "dense_reference"),
    ("encoder", "sparse"),
    ("encoder", "dense_reference"),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=7)
    parser.add_argument("--size", default="atto")
    parser.add_argument("--pretext", default="all")
    parser.add_argument("--img", type=int, default=56)
    parser.add_argument("--patch", type=int, default=8)
    parser.add_argument("--mask-ratio", type=float, default=0.6)
    parser.add_argument("--no-memory", action="store_true", help="skip the memory processes")
    return parser.parse_args(argv)


def synthetic_batch(model, batch: int, device: str) -> dict[str, torch.Tensor]:
    """Random inputs and targets in the normalised batch contract of the model's tasks."""
    from mpmae.modalities import MODALITIES, TaskKind

    size, pretext = model.config.img_size, model.pretext
    out = {"image": torch.randn(batch, pretext.in_chans, size, size)}
    for task in pretext.tasks:
        kind, c = MODALITIES[task].kind, pretext.output_channels(task)
        if kind is TaskKind.PIXEL_REGRESSION:
            out[task] = torch.randn(batch, c, size, size)
        elif kind is TaskKind.PIXEL_CLASSES:
            out[task] = torch.randint(0, c, (batch, size, size))
        elif kind is TaskKind.IMAGE_REGRESSION:
            out[task] = torch.randn(batch, c)
        else:
            out[task] = torch.randint(0, c, (batch,))
    return {k: v.to(device) for k, v in out.items()}


def build_model(args: argparse.Namespace, impl: str) -> torch.nn.Module:
    """The MP-MAE, or (``dense_reference``) the same weights with the dense-masked encoder."""
    torch.manual_seed(0)  # same seed, same weights for both implementations
    model = build_mpmae(
        size=args.size,
        pretext=args.pretext,
        patch_size=args.patch,
        img_size=args.img,
        mask_ratio=args.mask_ratio,
    )
    if impl == "dense_reference":
        model.encoder = DenseMaskedReference(model.encoder)
    return model.to(args.device)


def make_steps(args: argparse.Namespace, model: torch.nn.Module, impl: str, batch) -> dict:
    """case → step(mask): zero the grads, forward (+ loss), backward."""

    def whole(mask):
        return model(batch, mask=mask).loss

    def encoder_only(mask):
        return model.encoder.forward_masked(batch["image"], mask).float().square().mean()

    device_type = args.device.split(":")[0]
    steps = {}
    for part, loss_fn in (("mpmae", whole), ("encoder", encoder_only)):
        loss_fn = torch.compile(loss_fn) if args.compile else loss_fn

        def step(mask, loss_fn=loss_fn):
            model.zero_grad(set_to_none=True)
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=args.bf16):
                loss = loss_fn(mask)
            loss.backward()

        steps[(part, impl)] = step
    return steps


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_cases(args: argparse.Namespace) -> dict[tuple[str, str], list[float]]:
    steps, masker = {}, None
    for impl in ("sparse", "dense_reference"):
        model = build_model(args, impl)
        batch = synthetic_batch(model, args.batch, args.device)
        steps.update(make_steps(args, model, impl, batch))
        masker = model
    generator = torch.Generator().manual_seed(1)
    times: dict[tuple[str, str], list[float]] = {case: [] for case in CASES}
    for i in range(args.warmup + args.iters):
        mask = masker.random_mask(args.batch, generator, args.device)
        for case in CASES:
            synchronize(args.device)
            start = time.perf_counter()
            steps[case](mask)
            synchronize(args.device)
            if i >= args.warmup:
                times[case].append(time.perf_counter() - start)
    return times


def current_memory(device: str) -> int:
    """Bytes in use now (CUDA tensors, or resident set on CPU); starts a new peak."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset the resident-set high-water mark (VmHWM)
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_memory(device: str) -> int:
    """Peak bytes since ``current_memory``. On CPU VmHWM, not ru_maxrss: the latter keeps
    the peak of the parent process a spawned child was forked from."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated()
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def peak_memory_child(args: argparse.Namespace, case: tuple[str, str], queue) -> None:
    """In a fresh process: peak memory over three steps, and its rise above the set-up."""
    torch.set_num_threads(args.threads)
    model = build_model(args, case[1])
    batch = synthetic_batch(model, args.batch, args.device)
    step = make_steps(args, model, case[1], batch)[case]
    generator = torch.Generator().manual_seed(1)
    masks = [model.random_mask(args.batch, generator, args.device) for _ in range(3)]
    before = current_memory(args.device)
    for mask in masks:
        step(mask)
    synchronize(args.device)
    peak = peak_memory(args.device)
    queue.put({"peak_mem_mb": peak / 2**20, "step_mem_mb": (peak - before) / 2**20})


def measure_memory(args: argparse.Namespace) -> dict[tuple[str, str], dict[str, float]]:
    context = multiprocessing.get_context("spawn")
    out = {}
    for case in CASES:
        queue = context.Queue()
        child = context.Process(target=peak_memory_child, args=(args, case, queue))
        child.start()
        out[case] = queue.get(timeout=1800)
        child.join()
    return out


def report(args, times, memory) -> dict:
    grid = (args.img // args.patch) ** 2
    result = {
        "benchmark": "bench_model",
        "machine": {
            "device": args.device,
            "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
            "cpu_count": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "torch": torch.__version__,
            "platform": platform.platform(),
        },
        "settings": {
            "size": args.size,
            "pretext": args.pretext,
            "img_size": args.img,
            "patch_size": args.patch,
            "mask_ratio": args.mask_ratio,
            "kept_patches": f"{num_kept(grid, args.mask_ratio)}/{grid}",
            "batch": args.batch,
            "warmup": args.warmup,
            "iters": args.iters,
            "bf16": args.bf16,
            "compile": args.compile,
        },
        "encoder_flop_ceiling": round(grid / num_kept(grid, args.mask_ratio), 3),
    }
    for part in ("mpmae", "encoder"):
        entry = {}
        for impl in ("sparse", "dense_reference"):
            median, best = statistics.median(times[(part, impl)]), min(times[(part, impl)])
            entry[impl] = {
                "median_step_s": round(median, 4),
                "best_step_s": round(best, 4),
                "tiles_per_s": round(args.batch / median, 2),
                **{k: round(v, 1) for k, v in memory.get((part, impl), {}).items()},
            }
        for name, key in (("speedup", "median_step_s"), ("speedup_best", "best_step_s")):
            entry[name] = round(entry["dense_reference"][key] / entry["sparse"][key], 3)
        result[part] = entry
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    memory = {} if args.no_memory else measure_memory(args)  # first: children fork a small parent
    times = time_cases(args)
    print(json.dumps(report(args, times, memory), indent=2))


if __name__ == "__main__":
    main()
