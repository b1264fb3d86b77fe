"""The per-worker pretraining loop that Ray Train runs on every worker.

Rank 0 alone talks to MLflow, writes checkpoints and runs the linear probe; every rank
calls ``ray.train.report`` at the same steps with the same keys because a report is a
barrier (Ray Tune reads rank 0's metrics).

A step whose loss or gradient is not finite on any rank updates nothing (the optimiser
step is skipped on every rank alike) and is counted; past ``train.max_nonfinite_steps``
the run stops. Checkpoints hold only finite weights, every rank's own RNG states and the
data position, so a resumed run continues the interrupted epoch where it was.

A preemption notice (:mod:`mpmae.train.preemption`) ends the run at the step all ranks
agree on, with a checkpoint there: a resume loses no step.

A checkpoint that cannot be written (:class:`~mpmae.train.checkpoint.RunCheckpoints`) is
one warning line; training goes on, its report carries no checkpoint, and the previous one
stays the latest. A preemption's that cannot be written ends the run with
:class:`~mpmae.errors.Preempted` from rank 0 once it has wound down (Ray Train's result
only knows reports that carried a checkpoint), naming the step a resume starts from. Every
report carries ``checkpoint_step`` (the newest written, NaN while none),
``checkpoint_write_failures`` (this session's, in all) and the storage retries of the
training workers and of the stream's read tasks (``storage_retries/<kind>``, summed:
:func:`storage_retry_metrics`).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch

from mpmae.data.stream.epochs import EpochPrefetcher
from mpmae.data.stream.normalise import Normaliser
from mpmae.data.stream.tile_dataset import guarded, torch_batches
from mpmae.model import MPMAE
from mpmae.model.state_match import load_model_state, load_optimizer_state
from mpmae.ray_fixes.quiet_workers import quiet_driver
from mpmae.storage import retry_counts
from mpmae.train.checkpoint import RunCheckpoints, restore_rng, rng_state
from mpmae.train.config import PretrainConfig
from mpmae.train.engine.finite_step import NonFiniteError, finite_step
from mpmae.train.engine.precision import autocast
from mpmae.train.engine.schedule import WarmupCosine
from mpmae.train.memory_reuse import keep_freed_memory
from mpmae.train.preemption import NoticeWatcher, agreed
from mpmae.train.resume import load_resumable, resume_position
from mpmae.train.tile_record import TileRecord
from mpmae.train.worker_spec import WorkerSpec


@dataclass
class LoopState:
    """What the loop carries between steps; ``step`` counts optimizer steps, ``epoch`` the
    epoch being read and ``epoch_tiles`` the tiles (all ranks) trained on in it."""

    step: int = 0
    tiles: int = 0
    epoch: int = 0
    epoch_tiles: int = 0
    nonfinite: int = 0  # optimizer steps skipped for a non-finite loss or gradient
    preempted: bool = False  # a notice came: this step's report checkpoints and the run stops
    grad_norm: float = 0.0
    last: Any = None  # (normalised batch, model output) of the latest micro-batch
    window: dict[str, float] = field(default_factory=lambda: {"t": time.perf_counter(),
                                                              "tiles": 0, "wait": 0.0})


def train_loop(config: dict) -> None:
    """Ray Train entry point. ``config["spec"]`` is the run's :class:`WorkerSpec`."""
    from ray import train

    quiet_driver()
    keep_freed_memory()
    spec: WorkerSpec = config["spec"]
    cfg = spec.cfg
    rank = train.get_context().get_world_rank()
    torch.manual_seed(cfg.train.seed + rank)
    # Ray pins fractional-CPU workers to one thread; use the CPUs the worker reserved.
    torch.set_num_threads(max(1, math.ceil(cfg.scaling.cpus_per_worker)))
    model, raw_model = _build_model(cfg)
    device = next(raw_model.parameters()).device
    groups = raw_model.param_groups(cfg.optim.weight_decay, cfg.optim.decay_grn_and_mask_token)
    optimizer = torch.optim.AdamW(groups, lr=cfg.resolved_lr, betas=tuple(cfg.optim.betas))
    total, per_epoch = spec.total_steps, spec.steps_per_epoch
    schedule = WarmupCosine(cfg.resolved_lr, cfg.optim.min_lr,
                            round(cfg.optim.warmup_epochs * per_epoch), total)
    state = LoopState()
    resumed = _resume(raw_model, optimizer, state, device, spec, rank)
    schedule.apply(optimizer, state.step)
    normaliser = Normaliser(spec.stats, raw_model.pretext, crop=cfg.model.img_size)
    normaliser.to(device).train()
    tracker = _Tracker(spec, raw_model.pretext, rank == 0,
                       latest_step=state.step if resumed else None)
    precision = cfg.train.resolved_precision(device.type)
    amp = partial(autocast, device, precision)  # a fresh context for each forward
    watcher = NoticeWatcher(cfg.train.preemption_notice, spec.run_dir if rank == 0 else None)
    with EpochPrefetcher(_epoch_batches(spec, device), first_epoch=state.epoch,
                         resumed=resumed) as epochs:
        while state.step < total and not state.preempted:
            _run_epoch(cfg, model, normaliser, optimizer, schedule, epochs.epoch(state.epoch),
                       state, amp, tracker, watcher, total=total,
                       epoch_end=(state.epoch + 1) * per_epoch)
            state.epoch, state.epoch_tiles = state.epoch + 1, 0
    watcher.close()
    tracker.finish(raw_model, export=not state.preempted)


def _epoch_batches(spec: WorkerSpec, device: torch.device):
    """epoch → this worker's raw batches of its shard of the stream, shuffled by epoch."""
    from ray import train

    cfg = spec.cfg
    ctx = train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    shard = train.get_dataset_shard("train")

    def batches(epoch: int):
        seed = cfg.train.seed * 10_007 + epoch * world + rank
        return guarded(torch_batches(shard, cfg.train.batch_size, cfg.data.shuffle_buffer,
                                     seed=seed, device=device))

    return batches


def _build_model(cfg: PretrainConfig) -> tuple[torch.nn.Module, MPMAE]:
    from ray.train.torch import prepare_model

    raw = MPMAE(cfg.model)
    model = prepare_model(raw)
    raw = model.module if hasattr(model, "module") else model
    if cfg.train.compile:
        model = torch.compile(model)
    return model, raw


def _load_probe_set(spec: WorkerSpec):
    from mpmae.train.online_probe import load_probe_set

    cfg = spec.cfg
    return load_probe_set(cfg.data.probe_uri, spec.stats, cfg.model.pretext_set.input_bands,
                          cfg.model.img_size, spec.data_root.options)


def _resume(model: MPMAE, optimizer, state: LoopState, device, spec: WorkerSpec,
            rank: int) -> bool:
    """Load the newest intact checkpoint, if any; True when the run was resumed. The lr
    follows from the step alone: a checkpoint's ``scheduler`` state (older ones hold
    one) is not needed."""
    from ray import train

    saved = load_resumable(train.get_checkpoint(), spec.run_dir, device,
                           warn=print if rank == 0 else _quiet)
    if saved is None:
        return False
    source = f"the checkpoint of run {spec.cfg.run_name} at step {saved['step']}"
    load_model_state(model, saved["model"], source)
    load_optimizer_state(optimizer, saved["optimizer"], source)
    state.step, state.tiles = saved["step"], saved["tiles"]
    state.nonfinite = saved.get("nonfinite", 0)
    # Checkpoints before the data position was saved: the epoch's start.
    state.epoch = saved.get("epoch", state.step // spec.steps_per_epoch)
    state.epoch_tiles = saved.get("epoch_tiles", 0)
    # The stream was placed at the newest checkpoint's position (resume.ResumingStream).
    placed = resume_position(spec.run_dir)
    if (state.epoch, state.epoch_tiles) != (placed.epoch, placed.tiles):
        print(f"rank {rank}: resumed at epoch {state.epoch} + {state.epoch_tiles} tiles, but "
              f"the stream was placed at epoch {placed.epoch} + {placed.tiles} (a newer "
              "checkpoint was unreadable)")
    _restore_rank_rng(saved["rng"], rank, spec.cfg.train.seed, state.step)
    return True


def _restore_rank_rng(saved: dict | list, rank: int, seed: int, step: int) -> None:
    """Each rank gets back its own RNG states; a run resumed on a different number of
    workers (or from a checkpoint that kept only rank 0's) draws fresh ones per rank."""
    from ray import train

    states = saved if isinstance(saved, list) else [saved]
    if len(states) == train.get_context().get_world_size():
        restore_rng(states[rank])
    else:
        torch.manual_seed(seed + 1_000_003 * step + rank)


def _quiet(_: str) -> None:
    """Only rank 0 prints resume warnings: every rank would print the same."""


def _run_epoch(cfg, model, normaliser, optimizer, schedule: WarmupCosine, batches,
               state: LoopState, amp, tracker, watcher: NoticeWatcher, total: int,
               epoch_end: int) -> None:
    """Train on ``batches`` until the data or the epoch's planned steps (``epoch_end``) or
    the run's (``total``) run out, or a preemption notice comes."""
    accumulation, micro = cfg.train.accumulation, 0
    stop = min(total, epoch_end)
    iterator = iter(batches)
    finite = torch.ones((), dtype=torch.bool)
    while state.step < stop:
        t0 = time.perf_counter()
        raw = next(iterator, None)
        t1 = time.perf_counter()
        if raw is None:
            return
        micro += 1
        sync = micro % accumulation == 0
        with _no_sync(model, sync), amp():
            batch = normaliser(tracker.tiles.take(raw))
            output = model(batch)
        (output.loss / accumulation).backward()
        finite = finite.to(output.loss.device) & torch.isfinite(output.loss.detach())
        if sync:
            _optimizer_step(model, optimizer, state, finite, cfg.train.max_nonfinite_steps)
            finite = torch.ones((), dtype=torch.bool)
            state.step += 1
            schedule.apply(optimizer, state.step)
        n = len(batch["image"]) * tracker.world
        state.tiles += n
        state.epoch_tiles += n
        state.window["tiles"] += n
        state.window["wait"] += t1 - t0
        state.last = (batch, output)
        if sync:
            state.preempted = agreed(watcher.noticed)
            tracker.after_step(model, state, optimizer, epoch_done=state.step >= epoch_end)
            if state.preempted:
                return


def _optimizer_step(model, optimizer, state: LoopState, finite_loss, max_nonfinite: int) -> None:
    """Step unless the loss or the (all-reduced) gradient is non-finite on any rank: then
    every rank skips it alike, and too many skips stop the run."""
    params = [p for p in model.parameters() if p.grad is not None]
    norm = finite_step(params, optimizer, finite_loss)
    if norm is not None:
        state.grad_norm = float(norm)
    else:
        state.nonfinite += 1
        if state.nonfinite > max_nonfinite:
            raise NonFiniteError(
                f"{state.nonfinite} optimizer steps had a non-finite loss or gradient (the "
                f"latest at step {state.step + 1}), more than train.max_nonfinite_steps="
                f"{max_nonfinite}; no checkpoint holds them. Lower optim.lr, train in fp32 "
                "(train.precision=fp32) or check the data (mpmae data inspect), then "
                "re-run the same command to resume from the last checkpoint")


def _gathered_rng_states() -> list:
    """Every rank's RNG states, in rank order (a collective: all ranks call it)."""
    import torch.distributed as dist

    mine = rng_state()
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return [mine]
    states: list = [None] * dist.get_world_size()
    dist.all_gather_object(states, mine)  # between this run's own workers only
    return states


def storage_retry_metrics(stream_retries: dict[str, int] | None = None) -> dict[str, float]:
    """``storage_retries/<kind>``: the storage operations tried again (``throttled``,
    ``server_error``) or given up on (``failed``) since the run started: the training
    workers' own (checkpoint writes, resume and probe-set reads), summed over ranks (one
    all-reduce; every rank calls it), plus ``stream_retries``, the stream's (its read tasks
    and the building of it, :mod:`mpmae.data.stream.retry_tally`; rank 0 passes them).
    Always logged, zeros included, so a dashboard can plot the series from the start."""
    import torch.distributed as dist

    counts = retry_counts()
    values = torch.tensor([counts[key] for key in counts], dtype=torch.float64)
    if dist.is_initialized() and dist.get_world_size() > 1:
        if dist.get_backend() == "nccl":
            values = values.cuda()
        dist.all_reduce(values)  # a handful of numbers, at the reporting interval only
    stream = stream_retries or {}
    return {f"storage_retries/{key}": float(v) + stream.get(key, 0)
            for key, v in zip(counts, values.tolist(), strict=True)}


def _warn(line: str) -> None:
    """A warning of rank 0, on the driver's console (Ray forwards workers' output)."""
    print(f"[mpmae] warning: {line}", flush=True)


def _no_sync(model, sync: bool):
    """Skip DDP's gradient all-reduce on micro-batches that don't end an optimizer step."""
    if sync or not hasattr(model, "no_sync"):
        return contextlib.nullcontext()
    return model.no_sync()


class _Tracker:
    """Reports to Ray Train; on rank 0 also logs to MLflow and writes checkpoints."""

    def __init__(self, spec: WorkerSpec, pretext, is_chief: bool,
                 latest_step: int | None) -> None:
        import ray
        from ray import train

        self.spec, self.cfg, self.pretext, self.is_chief = spec, spec.cfg, pretext, is_chief
        self.checkpoints = RunCheckpoints(spec.run_dir, spec.cfg.train.max_failed_checkpoints,
                                          _warn, latest_step)
        self.world = train.get_context().get_world_size()
        self.total = spec.total_steps
        self.tiles = TileRecord(spec.run_dir if spec.cfg.data.record_tiles else None,
                                train.get_context().get_world_rank(),
                                ray.get_runtime_context().get_node_id())
        self.probe_set = None
        self.stream_retries: dict[str, int] = {}  # the stream's, as rank 0 last read them
        # The latest probe result, carried in every report: Tune wants its metric in each.
        self.probe: dict[str, float] = {}
        if is_chief:
            from mpmae.track.runs import start_run, tracking_uri
            from mpmae.track.sink import TrackingSink

            cfg = spec.cfg
            run_id = start_run(cfg.mlflow, experiment=cfg.experiment, run_name=cfg.run_name,
                               config=cfg, model=cfg.model, run_id=spec.mlflow_run_id)
            # Metrics and figures go through a background thread: an outage never stalls.
            self.sink = TrackingSink(run_id, tracking_uri(cfg.mlflow))
            if cfg.train.probe_every:
                self.probe_set = _load_probe_set(spec)

    def after_step(self, model, state: LoopState, optimizer, epoch_done: bool) -> None:
        t = self.cfg.train
        step = state.step
        log = step % t.log_every == 0 or step == self.total or state.preempted
        checkpoint = step % t.checkpoint_every == 0 or step == self.total or state.preempted
        # The first probe comes with the first step, so every report can carry one.
        probe = t.probe_every > 0 and (step % t.probe_every == 0 or step == self.total
                                       or not self.probe)
        if probe:
            self._probe(model, step)
        if log or checkpoint or probe:
            self.tiles.write(step, state.epoch)
            self._report(state, optimizer, model, checkpoint=checkpoint, epoch_done=epoch_done)
        if self.is_chief and t.figure_every and step % t.figure_every == 0:
            self._figure(state)

    def _probe(self, model, step: int) -> None:
        """Rank 0 probes its frozen encoder; other ranks report NaN under the same keys."""
        accuracy = float("nan")
        if self.is_chief:
            from mpmae.train.online_probe import probe_encoder

            raw = model.module if hasattr(model, "module") else model
            accuracy = probe_encoder(getattr(raw, "_orig_mod", raw).encoder, self.probe_set)
        self.probe = {"probe_accuracy": accuracy, "probe_step": step}

    def _report(self, state: LoopState, optimizer, model, checkpoint: bool,
                epoch_done: bool) -> None:
        from ray import train
        from ray.train import CheckpointUploadMode

        metrics = self._metrics(state, optimizer)
        # Every rank takes part: each one's RNG states go into rank 0's checkpoint.
        rngs = _gathered_rng_states() if checkpoint else None
        ckpt = None
        if checkpoint and self.is_chief:
            written = self.checkpoints.write(
                self._state(model, state, optimizer, rngs, epoch_done),
                preempted=state.preempted)
            if written is not None:
                ckpt = train.Checkpoint(written.path, filesystem=written.fs)
        metrics.update(self._storage_metrics())
        if self.is_chief:
            self.sink.log_metrics(metrics, state.step)
        # Written already, in the run folder Ray Train manages: it only registers it.
        train.report(metrics, checkpoint=ckpt,
                     checkpoint_upload_mode=CheckpointUploadMode.NO_UPLOAD)

    def _storage_metrics(self) -> dict[str, float]:
        """The checkpoints written and failed (rank 0 knows; other ranks report NaN under
        the same keys) and the storage retries of every rank (a collective)."""
        latest, failed = float("nan"), float("nan")
        if self.is_chief:
            if self.checkpoints.latest_step is not None:
                latest = float(self.checkpoints.latest_step)
            failed = float(self.checkpoints.failures.total)
            tally = self.spec.retry_tally
            # A tally that does not answer in time: its last sum, the run goes on.
            self.stream_retries = (tally.total() if tally else None) or self.stream_retries
        return {"checkpoint_step": latest, "checkpoint_write_failures": failed,
                **storage_retry_metrics(self.stream_retries if self.is_chief else None)}

    def _metrics(self, state: LoopState, optimizer) -> dict[str, float]:
        from mpmae.track.runs import training_metrics

        now = time.perf_counter()
        w = state.window
        elapsed = max(now - w["t"], 1e-9)
        metrics = training_metrics(
            state.last[1], lr=optimizer.param_groups[0]["lr"], tiles_per_s=w["tiles"] / elapsed,
            data_wait_fraction=min(w["wait"] / elapsed, 1.0))
        metrics.update(step=state.step, total_steps=self.total, tiles=state.tiles,
                       grad_norm=state.grad_norm, nonfinite_steps=state.nonfinite, **self.probe)
        if state.preempted:  # the driver reads it from the last report
            metrics["preempted"] = 1.0
        state.window = {"t": now, "tiles": 0, "wait": 0.0}
        return metrics

    def _state(self, model, state: LoopState, optimizer, rngs: list, epoch_done: bool) -> dict:
        from mpmae.config import dump_yaml

        raw = model.module if hasattr(model, "module") else model
        raw = getattr(raw, "_orig_mod", raw)
        weights = raw.state_dict()
        if not all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point()):
            raise NonFiniteError(f"the weights at step {state.step} are not finite; no "
                                 "checkpoint was written. Re-run the same command to resume "
                                 "from the last one")
        # A checkpoint at the end of an epoch resumes at the start of the next.
        epoch, tiles = (state.epoch + 1, 0) if epoch_done else (state.epoch, state.epoch_tiles)
        return {"model": weights, "optimizer": optimizer.state_dict(),
                "step": state.step, "tiles": state.tiles,
                "epoch": epoch, "epoch_tiles": tiles, "nonfinite": state.nonfinite,
                "rng": rngs, "mlflow_run_id": self.spec.mlflow_run_id,
                "config": dump_yaml(self.cfg)}

    def _figure(self, state: LoopState) -> None:
        from mpmae.track.figures import reconstruction_figure

        batch, output = state.last
        self.sink.log_figure(reconstruction_figure(batch, output, self.pretext), state.step)

    def finish(self, model: MPMAE, export: bool) -> None:
        """Rank 0 sends the tracking it holds and, at the run's end (not at a preemption),
        exports the encoder release and logs it; the driver ends the run."""
        if self.is_chief:
            from mpmae.train.export import export_encoder

            self.sink.close(self.spec.run_dir)  # bounded; what stays unsent goes to the folder
            if self.checkpoints.unsaved_preemption is not None:
                raise self.checkpoints.unsaved_preemption
            if export:
                export_encoder(model.encoder, self.cfg, self.spec.stats, self.spec.run_dir)
