"""The pretraining config schema: what `mpmae pretrain --config FILE --set key=value` accepts.

Each part owns its section (``data``: :mod:`mpmae.data.config`, ``storage``:
:mod:`mpmae.storage`, ``model``: :mod:`mpmae.model.config`, ``mlflow``:
:mod:`mpmae.track.config`); the optimiser, loop and scaling sections are the trainer's own.
Defaults are the embedded demo: a synthetic dataset, a local folder as the store, MLflow in a
local SQLite file, the atto model for a few epochs — it runs on two CPU cores in about ten
minutes. The paper's MMEarth64 recipe is ``jobs/configs/mmearth64_atto.yaml``. Empty strings
mean "use the embedded default" (see each field's help); ``<cache>`` is
:func:`mpmae.config.cache_dir` ($MPMAE_HOME, else ~/.cache/mpmae). ``mpmae pretrain
--help-config`` prints every key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mpmae.config import check_name, doc, require
from mpmae.data.config import DataConfig
from mpmae.model.config import MPMAEConfig
from mpmae.storage import StorageConfig
from mpmae.track.config import MlflowConfig
from mpmae.train.engine.precision import resolve_precision
from mpmae.train.preemption import notice_source_problem


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up then cosine decay. The demo trains 4 epochs with 1 warm-up
    epoch; the paper's 200 with 40 are in jobs/configs/mmearth64_atto.yaml."""

    base_lr: float = field(default=1.5e-4, metadata=doc(
        "Learning rate per 256 samples of effective batch"))
    lr: float | None = field(default=1.0e-3, metadata=doc(
        "Absolute learning rate; null: base_lr x effective batch / 256. The demo uses 1e-3: "
        "the scaling rule's 1.9e-5 at batch 32 would barely move in 100 steps"))
    weight_decay: float = field(default=0.05, metadata=doc(
        "AdamW weight decay (not applied to norms, biases, loss weights)"))
    decay_grn_and_mask_token: bool = field(default=False, metadata=doc(
        "Also decay the GRN gamma/beta and the decoder's mask token, as the MMEarth "
        "reference does (their tensors are not 1-D there); false: they are exempt like "
        "every other vector"))
    betas: tuple[float, float] = field(default=(0.9, 0.95), metadata=doc("AdamW betas"))
    warmup_epochs: float = field(default=1.0, metadata=doc("Epochs of linear warm-up"))
    epochs: float = field(default=4.0, metadata=doc("Training length in epochs"))
    min_lr: float = field(default=0.0, metadata=doc("Learning rate at the end of the decay"))

    def validate(self) -> None:
        require(self.base_lr > 0, "base_lr", "must be positive")
        require(self.lr is None or self.lr > 0, "lr", "must be positive or null")
        require(self.weight_decay >= 0, "weight_decay", "must be 0 or more")
        require(all(0 <= b < 1 for b in self.betas), "betas", "each beta must be in [0, 1)")
        require(self.epochs > 0, "epochs", "must be positive")
        require(0 <= self.warmup_epochs <= self.epochs, "warmup_epochs",
                 f"must be between 0 and epochs ({self.epochs}), got {self.warmup_epochs}")
        require(self.min_lr >= 0, "min_lr", "must be 0 or more")


@dataclass(frozen=True)
class TrainLoopConfig:
    batch_size: int = field(default=32, metadata=doc("Samples per worker per micro-batch"))
    accumulation: int = field(default=1, metadata=doc(
        "Micro-batches accumulated per optimizer step"))
    max_steps: int | None = field(default=None, metadata=doc(
        "Stop after this many optimizer steps; null: run optim.epochs"))
    checkpoint_every: int = field(default=50, metadata=doc(
        "Optimizer steps between checkpoints"))
    log_every: int = field(default=5, metadata=doc("Optimizer steps between metric logs"))
    figure_every: int = field(default=100, metadata=doc(
        "Optimizer steps between reconstruction figures (0: never)"))
    seed: int = field(default=0, metadata=doc("Random seed (masks, crops, initialisation)"))
    compile: bool = field(default=False, metadata=doc("torch.compile the model"))
    precision: Literal["auto", "fp32", "bf16"] = field(default="auto", metadata=doc(
        "Autocast precision; auto: bf16 on GPU, fp32 on CPU"))
    probe_every: int = field(default=0, metadata=doc(
        "Optimizer steps between linear-probe evaluations (0: never)"))
    keep_checkpoints: int = field(default=3, metadata=doc(
        "Newest checkpoints kept; a resume falls back to an older one if the newest is "
        "damaged, and a non-finite step never writes one"))
    max_nonfinite_steps: int = field(default=20, metadata=doc(
        "Optimizer steps with a non-finite loss or gradient that are skipped (no update) "
        "before the run stops; 0: stop at the first"))
    max_failed_checkpoints: int = field(default=3, metadata=doc(
        "Checkpoint writes in a row that may fail (full disk, S3 errors past the retries): "
        "each is one warning, the previous checkpoint stays the latest and training tries "
        "again at the next one; one more stops the run. 0: stop at the first"))
    preemption_notice: str = field(default="", metadata=doc(
        "Besides SIGTERM/SIGINT to the command: a file path whose appearance, or an "
        "http(s) URL whose 200 answer (e.g. a spot instance's metadata), each worker's node "
        "polls as the notice to checkpoint at the current step and stop (exit 75)"))

    def resolved_precision(self, device_type: str) -> str:
        """``fp32`` or ``bf16`` on a device of this type (``cuda``, ``cpu``)."""
        return resolve_precision(self.precision, device_type)

    def validate(self) -> None:
        for key in ("max_nonfinite_steps", "max_failed_checkpoints"):
            require(getattr(self, key) >= 0, key, "must be 0 or more")
        for key in ("batch_size", "accumulation", "checkpoint_every", "log_every",
                    "keep_checkpoints"):
            require(getattr(self, key) >= 1, key, "must be 1 or more")
        for key in ("figure_every", "probe_every"):
            require(getattr(self, key) >= 0, key, "must be 0 (never) or more")
        require(self.max_steps is None or self.max_steps >= 1, "max_steps",
                 "must be 1 or more, or null")
        problem = notice_source_problem(self.preemption_notice)
        require(problem is None, "preemption_notice", problem or "")


@dataclass(frozen=True)
class ScalingConfig:
    num_workers: int = field(default=1, metadata=doc(
        "Ray Train workers (one per GPU on a GPU cluster)"))
    use_gpu: bool | None = field(default=None, metadata=doc(
        "Train on GPUs; null: if the cluster has any"))
    cpus_per_worker: float = field(default=1.0, metadata=doc(
        "CPUs reserved per training worker"))
    data_cpus: float = field(default=1.0, metadata=doc(
        "CPUs left free for Ray Data so ingestion never starves"))
    max_failures: int = field(default=0, metadata=doc(
        "Worker-group restarts from the last checkpoint (-1: unlimited)"))
    address: str = field(default="", metadata=doc(
        "Ray cluster address; empty: RAY_ADDRESS, else a local Ray"))
    accelerator_resource: str = field(default="", metadata=doc(
        "Custom resource each worker also asks one unit of, so workers land only on node "
        "types that have it (ray-cluster.yaml's accelerator_gpu); empty: none"))

    def validate(self) -> None:
        require(self.num_workers >= 1, "num_workers", "must be 1 or more")
        require(self.cpus_per_worker > 0, "cpus_per_worker", "must be positive")
        require(self.data_cpus >= 0, "data_cpus", "must be 0 or more")
        require(self.max_failures >= -1, "max_failures", "must be -1 (unlimited) or more")


@dataclass(frozen=True)
class EvalAfterConfig:
    """``mpmae evaluate`` of the final encoder, when the run ends (off: no datasets)."""

    datasets: list[str] = field(default_factory=list, metadata=doc(
        "GEO-Bench dataset or benchmark folders; empty: no evaluation"))
    protocol: Literal["knn", "linear", "logistic"] = field(default="knn", metadata=doc(
        "knn (no training), linear (a fresh head per seed, MMEarth's recipe) or logistic "
        "(fitted to convergence, its L2 chosen on each dataset's valid split); each with "
        "mpmae evaluate's default recipe, its scores under downstream/DATASET/PROTOCOL/…"))
    seeds: int = field(default=1, metadata=doc(
        "Repeats of the linear head's training (kNN and logistic run once)"))

    def validate(self) -> None:
        require(self.seeds >= 1, "seeds", "must be 1 or more")


@dataclass(frozen=True)
class PretrainConfig:
    name: str = field(default="demo", metadata=doc("Experiment and run name base"))
    run_name: str = field(default="", metadata=doc(
        "Run name; empty: name + timestamp. Reusing a run name resumes that run"))
    data: DataConfig = field(default_factory=DataConfig, metadata=doc("Training data"))
    storage: StorageConfig = field(default_factory=StorageConfig, metadata=doc(
        "Where runs and checkpoints go"))
    model: MPMAEConfig = field(default_factory=MPMAEConfig, metadata=doc(
        "The MP-MAE model and its pretext tasks"))
    optim: OptimConfig = field(default_factory=OptimConfig, metadata=doc(
        "Optimizer and learning-rate schedule"))
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig, metadata=doc(
        "The training loop"))
    scaling: ScalingConfig = field(default_factory=ScalingConfig, metadata=doc(
        "Ray cluster resources"))
    mlflow: MlflowConfig = field(default_factory=MlflowConfig, metadata=doc(
        "Experiment tracking"))
    eval: EvalAfterConfig = field(default_factory=EvalAfterConfig, metadata=doc(
        "Downstream evaluation of the final encoder"))

    @property
    def effective_batch(self) -> int:
        """Samples per optimizer step across all workers."""
        return self.train.batch_size * self.train.accumulation * self.scaling.num_workers

    @property
    def experiment(self) -> str:
        """One MLflow experiment per config: ``mlflow.experiment``, else ``name``."""
        return self.mlflow.experiment or self.name

    @property
    def resolved_lr(self) -> float:
        if self.optim.lr is not None:
            return self.optim.lr
        return self.optim.base_lr * self.effective_batch / 256

    def validate(self) -> None:
        check_name(self.name, "name")
        if self.run_name:
            check_name(self.run_name, "run_name")
        require(self.model.img_size <= self.data.tile_size, "model.img_size",
                 f"{self.model.img_size} is larger than data.tile_size {self.data.tile_size}")
