"""The driver's side of ``protocol: finetune``: one cell per (partition, seed), each a Ray
task (one worker) or a Ray Train run (``finetune.workers`` > 1, DDP), its checkpoints and
result in its own folder. A finished cell is read back, not retrained; an interrupted one
resumes from its newest checkpoint when the same command runs again. SIGTERM or a first
Ctrl-C (or ``finetune.preemption_notice``) stops every running cell at its current step
with a checkpoint there, and the command exits 75."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from mpmae.cluster.task_result import our_error, task_result
from mpmae.config import runs_dir
from mpmae.data.geobench.task_specs import LabelKind
from mpmae.errors import Preempted
from mpmae.evaluate.command.encoders import Encoder
from mpmae.evaluate.command.plan import Dataset, DatasetPlan
from mpmae.evaluate.config import EvaluateConfig
from mpmae.evaluate.finetune.cell import CellSpec
from mpmae.evaluate.finetune.cell_store import FIGURE_FILE, RESULT_FILE, CellStore, cell_key
from mpmae.evaluate.protocols.ray_tasks import UNGROUPED
from mpmae.ray_fixes.train_sigint import keep_our_sigint
from mpmae.storage import Location, resolve
from mpmae.train.engine.checkpoint_store import CheckpointError
from mpmae.train.preemption import notice_on_signals

WORK_DIR = "evaluate"
# Keys that decide where and how fast a cell trains, not what it learns: left out of its hash.
NOT_HASHED = ("workers", "use_gpu", "loader_workers", "keep_checkpoints", "work_dir",
              "figure_samples", "preemption_notice")


def finetune_cells(encoder: Encoder, dataset: Dataset, plan: DatasetPlan, cfg: EvaluateConfig,
                   progress: Callable[[str], None]) -> dict[tuple[str, int], dict[str, Any]]:
    """(partition, seed) → the finished cell's result row fields: metric, value, ci95 (the
    last epoch's model on the test split), best_val, per_class_iou (segmentation) and the
    prediction figure's PNG bytes (``figure``, segmentation). The partitions are the
    plan's (a GEO-Bench-2 dataset: ``default`` only, its whole train split)."""
    root = _work_root(cfg)
    specs = {(p, s): _spec(encoder, dataset, plan, cfg, root, p, s)
             for p in plan.trains for s in range(cfg.seeds)}
    stores = {key: _store(spec) for key, spec in specs.items()}
    pending = [key for key, store in stores.items() if store.result() is None]
    progress(f"{dataset.name}: fine-tuning {len(pending)} of {len(specs)} cell(s) "
             f"({plan.size_note}); the others are finished in {root.uri}")
    with notice_on_signals(*[stores[key].folder for key in pending]):
        if cfg.finetune.workers == 1:
            refs = [_task(cfg).remote(specs[key]) for key in pending]
            for ref in refs:
                task_result(ref)
        else:
            for key in pending:  # each run takes the whole worker group
                _fit(specs[key], cfg)
    if stopped := [key for key in pending if stores[key].result() is None]:
        # A cell returns without a result only when a notice stopped it at a checkpoint.
        raise Preempted(f"{dataset.name}: fine-tune preempted, {len(stopped)} cell(s) "
                        f"checkpointed at their current step in {root.uri}; run the same "
                        "command to resume")
    return {key: _fields(store) for key, store in stores.items()}


def _fields(store: CellStore) -> dict[str, Any]:
    """The result row's fields from the cell's result file (``workers`` is None in a cell
    trained before cells recorded it), and its prediction figure (``figure``)."""
    result = store.result()
    if result is None:
        raise CheckpointError(f"{store.folder.uri}: the cell's training ended without a "
                              f"{RESULT_FILE}; run the same command again to resume it")
    iou = result.get("per_class_iou")  # segmentation only
    return {"metric": result["metric"], "value": result["value"], "ci95": tuple(result["ci95"]),
            "best_val": result["best_val"], "epochs": result["epochs"],
            "resumed_from_epoch": result["resumed_from_epoch"], "workers": result.get("workers"),
            "per_class_iou": None if iou is None else tuple(iou), "cell": store.folder.uri,
            "figure": store.read_file(FIGURE_FILE)}


def _work_root(cfg: EvaluateConfig) -> Location:
    """Where the cells live, resolved once (one set of storage options) for them all."""
    options = cfg.storage.options()
    if cfg.finetune.work_dir:
        return resolve(cfg.finetune.work_dir, options)
    return resolve(cfg.storage.root or str(runs_dir()), options).join(WORK_DIR)


def _spec(encoder: Encoder, dataset: Dataset, plan: DatasetPlan, cfg: EvaluateConfig,
          root: Location, partition: str, seed: int) -> CellSpec:
    # The metric is not hashed: it follows from the dataset, whose name the key holds.
    segmentation = dataset.label_kind is LabelKind.SEGMENTATION
    recipe = cfg.unet if segmentation else cfg.finetune
    hashed = {k: v for k, v in asdict(recipe).items() if k not in NOT_HASHED}
    key = cell_key(encoder.name, dataset.name, partition, seed,
                   {"recipe": hashed, "normalisation": plan.stats_note,
                    "segmentation": segmentation})
    return CellSpec(encoder.module, encoder.input_bands, str(dataset.folder.resolve()),
                    plan.trains[partition], dataset.samples(partition, "valid"), plan.test,
                    plan.match, plan.stats, dataset.label_kind.value, dataset.n_classes,
                    plan.metric, seed, recipe, cfg.finetune, root.join(*key).uri, root.options)


def _store(spec: CellSpec) -> CellStore:
    return CellStore(resolve(spec.cell, spec.storage), spec.shared.keep_checkpoints)


def _use_gpu(cfg: EvaluateConfig) -> bool:
    import ray

    if cfg.finetune.use_gpu is not None:
        return cfg.finetune.use_gpu
    return ray.cluster_resources().get("GPU", 0) >= cfg.finetune.workers


def _task(cfg: EvaluateConfig):
    import ray

    from mpmae.evaluate.finetune.loop import train_cell

    device = {"num_gpus": 1} if _use_gpu(cfg) else {"num_cpus": 1}
    return ray.remote(train_cell).options(**UNGROUPED, **device)


def _fit(spec: CellSpec, cfg: EvaluateConfig) -> None:
    """One cell as a Ray Train run of ``finetune.workers`` DDP workers."""
    from ray.train import RunConfig, ScalingConfig, TrainingFailedError
    from ray.train.torch import TorchTrainer

    folder = resolve(spec.cell, spec.storage)
    trainer = TorchTrainer(
        _worker, train_loop_config={"spec": spec},
        scaling_config=ScalingConfig(num_workers=cfg.finetune.workers, use_gpu=_use_gpu(cfg)),
        run_config=RunConfig(name="ray-train", storage_path=folder.path,
                             storage_filesystem=folder.fs if folder.is_s3 else None))
    keep_our_sigint(trainer)  # Ctrl-C checkpoints the current step, as SIGTERM does
    try:
        trainer.fit()
    except TrainingFailedError as e:
        ours = our_error(e)
        raise (ours or e) from None


def _worker(config: dict) -> None:
    from mpmae.evaluate.finetune.loop import train_cell

    train_cell(config["spec"])
