"""One fine-tune cell's training, on every worker of it: the model, the layer-decayed AdamW
with the training engine's per-step cosine lr (no warm-up), bf16 autocast on GPU, DDP when
there are several workers, a checkpoint at each epoch's end (rank 0) and, after the last
epoch, its scores.

The data order and the drop-path draws are seeded by (seed, epoch, rank), so an epoch
replayed after a resume sees what it would have seen. A preemption notice checkpoints the
step under way (its epoch and the steps of it done); the resumed epoch skips those steps'
samples unread and draws its drop-path afresh from where it re-enters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch import distributed as dist
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from mpmae.evaluate.finetune.cell import CellSpec
from mpmae.evaluate.finetune.cell_store import FIGURE_FILE, CellStore
from mpmae.evaluate.finetune.classifier import Classifier, with_drop_path
from mpmae.evaluate.finetune.figure import prediction_figure
from mpmae.evaluate.finetune.layer_decay import param_groups
from mpmae.evaluate.finetune.samples import SampleSet, eval_loader, first_samples, train_loader
from mpmae.evaluate.finetune.scores import counts_of, metric_score
from mpmae.evaluate.finetune.unet import UNet
from mpmae.evaluate.protocols.linear_head import classification_loss
from mpmae.model.convnextv2 import ENCODER_SIZES
from mpmae.storage import resolve
from mpmae.train.engine.finite_step import NonFiniteError, finite_step
from mpmae.train.engine.precision import autocast, resolve_precision
from mpmae.train.engine.schedule import WarmupCosine
from mpmae.train.preemption import NoticeWatcher, agreed

EVAL_BATCH = 64


def train_cell(spec: CellSpec, warn: Callable[[str], None] = print) -> None:
    """Train the cell from its newest checkpoint (or afresh) and, on rank 0, write its
    result; a preemption notice instead checkpoints the current step and returns without
    one. Every worker of the cell calls this."""
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() \
        else torch.device("cpu")
    recipe, store = spec.recipe, CellStore(resolve(spec.cell, spec.storage),
                                           spec.shared.keep_checkpoints)
    torch.manual_seed(spec.seed)  # the same fresh head/decoder on every rank
    model = _model(spec).to(device)
    depths = ENCODER_SIZES[spec.encoder.config.size].depths
    groups = param_groups(model, depths, recipe.weight_decay, recipe.layer_decay)
    optimizer = torch.optim.AdamW(groups, lr=_base_lr(recipe))
    at = _resume(store.load_latest(warn), model, optimizer)
    if rank == 0 and at.session_start + at.batch > 0:
        warn(f"{spec.cell}: resuming at epoch {at.epoch + 1}, step {at.batch + 1}")
    patch = spec.encoder.patch_size
    train = SampleSet(spec.folder, spec.train, spec.match, spec.stats, patch)
    batch = max(1, min(recipe.batch_size, len(train)) // world)
    loader = train_loader(train, batch, spec.seed, rank, world, spec.shared.loader_workers)
    steps = len(loader)  # per epoch, before a resumed epoch skips what it trained
    schedule = WarmupCosine(_base_lr(recipe), recipe.min_lr, 0, recipe.epochs * steps)
    loss_fn = _loss(spec)
    watcher = NoticeWatcher(spec.shared.preemption_notice, store.folder if rank == 0 else None)
    wrapped, frozen = None, None
    try:
        for epoch in range(at.epoch, recipe.epochs):
            if _frozen(spec, epoch) != frozen or wrapped is None:  # DDP sees the trainable set
                frozen = _frozen(spec, epoch)
                model.encoder.requires_grad_(not frozen)
                wrapped = _wrap(model, device, world)
            first = at.batch if epoch == at.epoch else 0
            # Drop-path draws seeded by where the session enters the epoch.
            torch.manual_seed(spec.seed * 1_000_003 + epoch * 1009 + rank + first * 7919)
            loader.sampler.set_epoch(epoch)
            loader.sampler.skip = first * batch
            losses = at.losses if epoch == at.epoch else []
            wrapped.train()
            for i, (x, y) in enumerate(loader, start=first):
                schedule.apply(optimizer, epoch * steps + i)
                loss = _step(wrapped, optimizer, x.to(device), y.to(device), loss_fn,
                             recipe.micro_batch, device)
                if loss is None:
                    at.skipped = _count_skipped(at.skipped, spec, epoch)
                else:
                    losses.append(loss)
                if agreed(watcher.noticed):
                    _stop_preempted(spec, store, model, optimizer, at, epoch, i + 1, losses,
                                    rank, warn)
                    return
            if rank == 0:
                at.history.append({"epoch": epoch, "train_loss": _mean(losses),
                                   "valid": _validate(model, spec, device),
                                   "encoder_frozen": frozen,
                                   "session_start": at.session_start})
                store.save(epoch, _state(model, optimizer, at, epoch))
                warn(_progress_line(spec, at.history[-1], recipe.epochs))
            if world > 1:
                dist.barrier()
    finally:
        watcher.close()
    if rank == 0:
        store.write_result({**_result(model, spec, store, at.history, at.session_start,
                                      device), "workers": world})
    if world > 1:
        dist.barrier()


@dataclass
class _Position:
    """Where a cell's training stands: the epoch under way and the batches of it already
    trained (non-zero after a preemption), the losses and history recorded so far, the
    non-finite steps skipped, and the epoch this session started in."""

    epoch: int = 0
    batch: int = 0
    losses: list[float] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    session_start: int = 0


def _resume(state: dict[str, Any] | None, model: nn.Module,
            optimizer: torch.optim.Optimizer) -> _Position:
    """The position a checkpoint's ``state`` holds (loaded into the model and optimizer);
    the start when there is none. An epoch's end checkpoint resumes at the next epoch, a
    preemption's (``batch``: the steps of the epoch it trained) inside its epoch."""
    if state is None:
        return _Position()
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    batch = int(state.get("batch", 0))
    epoch = int(state["epoch"]) + (0 if batch else 1)
    return _Position(epoch, batch, list(state.get("losses", [])), list(state["history"]),
                     int(state.get("nonfinite", 0)), epoch)


def _state(model: nn.Module, optimizer: torch.optim.Optimizer, at: _Position, epoch: int,
           batch: int = 0, losses: list[float] | None = None) -> dict[str, Any]:
    """A checkpoint's state: at ``epoch``'s end, or after its first ``batch`` steps."""
    state = {"model": model.state_dict(), "epoch": epoch, "optimizer": optimizer.state_dict(),
             "history": at.history, "nonfinite": at.skipped}
    if batch:
        state.update(batch=batch, losses=losses or [])
    return state


def _stop_preempted(spec: CellSpec, store: CellStore, model: nn.Module,
                    optimizer: torch.optim.Optimizer, at: _Position, epoch: int, batch: int,
                    losses: list[float], rank: int, warn: Callable[[str], None]) -> None:
    """Checkpoint the step every rank has just finished (rank 0), so that the same command
    resumes there."""
    if rank == 0:
        saved = store.save(epoch, _state(model, optimizer, at, epoch, batch, losses))
        warn(f"{spec.cell}: preempted at epoch {epoch + 1}, step {batch}; " + (
            "checkpointed" if saved else "its checkpoint could not be written (see above): "
            "a resume starts from the newest one written"))
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def _count_skipped(skipped: int, spec: CellSpec, epoch: int) -> int:
    """One more skipped step; too many stop the cell (its checkpoints hold none)."""
    skipped += 1
    limit = spec.shared.max_nonfinite_steps
    if skipped > limit:
        raise NonFiniteError(
            f"{spec.cell}: {skipped} fine-tuning steps had a non-finite loss or gradient "
            f"(the latest in epoch {epoch + 1}), more than finetune.max_nonfinite_steps="
            f"{limit}; no checkpoint holds them. Lower the recipe's blr, or check the "
            "dataset's band statistics, then re-run the same command to resume")
    return skipped


def _mean(losses: list[float]) -> float | None:
    return sum(losses) / len(losses) if losses else None  # None: every step was skipped


def _progress_line(spec: CellSpec, done: dict[str, Any], epochs: int) -> str:
    """One line per epoch on the driver's console (Ray forwards the task's prints)."""
    valid = "" if done["valid"] is None else f" · valid {100 * done['valid']:.1f} %"
    frozen = " · encoder frozen" if done["encoder_frozen"] else ""
    cell = "/".join(spec.cell.rstrip("/").split("/")[-3:])  # dataset/partition/seed…
    loss = "—" if done["train_loss"] is None else f"{done['train_loss']:.4f}"
    return f"{cell}: epoch {done['epoch'] + 1}/{epochs} · train loss {loss}{valid}{frozen}"


def _model(spec: CellSpec) -> nn.Module:
    encoder = with_drop_path(spec.encoder, spec.recipe.drop_path)
    return UNet(encoder, spec.n_classes) if spec.segmentation \
        else Classifier(encoder, spec.n_classes)


def _base_lr(recipe) -> float:
    # The configured batch sets the lr, as in the reference: a partition smaller than one
    # batch trains at the recipe's lr, not at one scaled down to its few samples.
    return recipe.blr * recipe.batch_size / 256


def _frozen(spec: CellSpec, epoch: int) -> bool:
    return spec.segmentation and epoch < spec.recipe.frozen_epochs


def _wrap(model: nn.Module, device: torch.device, world: int) -> nn.Module:
    if world == 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _loss(spec: CellSpec) -> Callable[[Tensor, Tensor], Tensor]:
    if spec.segmentation:  # logits cropped to the labels: padding is never scored
        return lambda logits, y: F.cross_entropy(logits[..., : y.shape[-2], : y.shape[-1]], y)
    return classification_loss(spec.recipe.label_smoothing, spec.kind == "multi_label")


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor,
          loss_fn, micro: int, device: torch.device) -> float | None:
    """One optimizer step over the batch, in micro-batches whose gradients add up; the
    batch's loss, or None where the step was skipped as non-finite (on every rank)."""
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for start in range(0, len(x), micro):
        part = slice(start, start + micro)
        # DDP averages the gradients once, after the last micro-batch.
        defer = start + micro < len(x) and isinstance(model, DistributedDataParallel)
        with model.no_sync() if defer else nullcontext():
            with _autocast(device):  # the forward only, as torch recommends
                loss = loss_fn(model(x[part]), y[part]).float()
            (loss * len(x[part]) / len(x)).backward()
        total += float(loss.detach()) * len(x[part]) / len(x)
    params = [p for p in model.parameters() if p.grad is not None]
    stepped = finite_step(params, optimizer, torch.tensor(math.isfinite(total))) is not None
    return total if stepped else None


def _autocast(device: torch.device):
    return autocast(device, resolve_precision("auto", device.type))


@torch.no_grad()
def _predict(model: nn.Module, samples: SampleSet, device: torch.device,
             workers: int) -> tuple[list[Tensor], list[Tensor]]:
    model.eval()
    logits, labels = [], []
    for x, y in eval_loader(samples, EVAL_BATCH, workers):
        with _autocast(device):
            out = model(x.to(device)).float()
        logits.append(out[..., : y.shape[-2], : y.shape[-1]] if y.ndim == 3 else out)
        labels.append(y.to(device))
    return logits, labels


def _validate(model: nn.Module, spec: CellSpec, device: torch.device) -> float | None:
    """The metric on the valid split (None without one)."""
    if not spec.valid:
        return None
    samples = SampleSet(spec.folder, spec.valid, spec.match, spec.stats, spec.encoder.patch_size)
    # Read in this process: loader processes started every epoch would cost more.
    logits, labels = _predict(model, samples, device, 0)
    counts = counts_of(spec.metric, logits, labels, spec.n_classes)
    return metric_score(spec.metric, counts, spec.seed).value


def _result(model: nn.Module, spec: CellSpec, store: CellStore, history: list[dict],
            start: int, device: torch.device) -> dict[str, Any]:
    """The last epoch's model on the whole test split, the best validation epoch, and for
    segmentation the per-class IoU and the prediction figure."""
    samples = SampleSet(spec.folder, spec.test, spec.match, spec.stats, spec.encoder.patch_size)
    logits, labels = _predict(model, samples, device, spec.shared.loader_workers)
    counts = counts_of(spec.metric, logits, labels, spec.n_classes)
    final = metric_score(spec.metric, counts, spec.seed)
    scored = [h for h in history if h["valid"] is not None]
    best = max(scored, key=lambda h: h["valid"], default=None)
    result = {"metric": final.metric, "value": final.value, "ci95": list(final.ci95),
              "best_val": None if best is None else
              {"epoch": best["epoch"], "value": best["valid"], "split": "valid"},
              "epochs": spec.recipe.epochs, "resumed_from_epoch": start, "history": history}
    if spec.segmentation:
        result["per_class_iou"] = _per_class_iou(counts, spec.n_classes)
        if spec.recipe.figure_samples:  # the test loader keeps the split's order
            x, y = first_samples(samples, spec.recipe.figure_samples)
            predicted = torch.cat(logits)[: len(x)].argmax(1).cpu()
            store.write_file(FIGURE_FILE, prediction_figure(x, y, predicted, spec.input_bands,
                                                            spec.n_classes))
    return result


def _per_class_iou(counts: Tensor, n_classes: int) -> list[float | None]:
    """IoU of each class over the whole test split; None for a class in neither the
    targets nor the predictions."""
    total = counts.double().sum(0)
    inter, union = total[:n_classes], total[n_classes:]
    return [float(i / u) if u > 0 else None for i, u in zip(inter, union, strict=True)]
