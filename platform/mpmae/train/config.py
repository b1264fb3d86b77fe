"""The pretraining config schema: what `mpmae pretrain --config FILE --set key=value` accepts.

Defaults are the embedded demo: a synthetic dataset, a local folder as the store, MLflow in a
local SQLite file, the atto model for a few epochs — it runs on two CPU cores in about ten
minutes. The paper's MMEarth64 recipe is ``jobs/configs/mmearth64_atto.yaml``. Empty strings
mean "use the embedded default" (see each field's help); ``<cache>`` is
:func:`mpmae.config.cache_dir` ($MPMAE_HOME, else ~/.cache/mpmae). ``mpmae pretrain
--help-config`` prints every key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from mpmae.config import ConfigError, doc
from mpmae.modalities import PretextSet, resolve_pretext
from mpmae.storage import StorageOptions

ModelSize = Literal["atto", "femto", "pico", "nano", "tiny"]
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(message, key)


def _check_name(value: str, key: str) -> None:
    # Names become folder names and MLflow experiment/run names.
    _require(NAME_PATTERN.fullmatch(value) is not None, key,
             f"use letters, digits, '_', '.' and '-' only, got {value!r}")


@dataclass(frozen=True)
class DataConfig:
    uri: str = field(default="", metadata=doc(
        "Dataset folder or s3:// URI (Parquet shards + dataset.json); empty: a synthetic "
        "dataset generated on first use in <cache>"))
    synth_tiles: int = field(default=1024, metadata=doc("Tiles in the synthetic dataset"))
    tile_size: int = field(default=64, metadata=doc(
        "Tile side in pixels; the synthetic dataset is generated at this size"))
    split: str = field(default="train", metadata=doc("Split to pretrain on"))
    shuffle_buffer: int = field(default=0, metadata=doc(
        "Rows in each worker's local shuffle buffer; 0: none (read tasks already shuffle "
        "tiles from random row groups of several shards, anew each epoch)"))
    eval_split: str = field(default="val", metadata=doc("Split for reconstructions and probes"))
    probe_uri: str = field(default="", metadata=doc(
        "Labelled set (train/test splits, a label column) for the linear probe of "
        "train.probe_every; empty: <data.uri>/downstream if it exists"))

    def validate(self) -> None:
        _require(self.synth_tiles > 0, "synth_tiles", "must be positive")
        _require(self.tile_size > 0, "tile_size", "must be positive")
        _require(self.shuffle_buffer >= 0, "shuffle_buffer", "must be 0 or more")


@dataclass(frozen=True)
class StorageConfig:
    """Where runs go. Credentials come only from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in
    the environment, so they never land in a saved config or in MLflow params."""

    root: str = field(default="", metadata=doc(
        "Folder or s3:// URI for runs and checkpoints; empty: <cache>/runs"))
    endpoint_url: str = field(default="", metadata=doc(
        "S3 endpoint (MinIO, Ceph…); empty: AWS_ENDPOINT_URL, else AWS itself"))
    region: str = field(default="", metadata=doc(
        "S3 region; empty: AWS_DEFAULT_REGION, else us-east-1"))

    def options(self) -> StorageOptions:
        """Endpoint and region from here, credentials from the environment."""
        return StorageOptions.from_env(endpoint_url=self.endpoint_url, region=self.region)


@dataclass(frozen=True)
class ModelConfig:
    size: ModelSize = field(default="atto", metadata=doc("ConvNeXt V2 encoder size"))
    patch_size: int = field(default=8, metadata=doc(
        "Masking patch side in pixels (a multiple of 8)"))
    img_size: int = field(default=56, metadata=doc(
        "Crop side fed to the model (a multiple of patch_size, at most data.tile_size)"))
    mask_ratio: float = field(default=0.6, metadata=doc(
        "Fraction of patches hidden from the encoder"))
    pretext: str | list[str] = field(default="all", metadata=doc(
        "Pretext set (S2, pix, img, all, rgb) or a list of tasks that includes sentinel2"))
    loss_weighting: Literal["uncertainty", "unweighted"] = field(
        default="uncertainty",
        metadata=doc("How task losses combine: learned uncertainty weights or a plain sum"))
    share_decoder: bool = field(default=True, metadata=doc(
        "One decoder shared by all tasks (else one per task)"))
    decoder_dim: int = field(default=512, metadata=doc("Decoder width"))
    stem: Literal["mmearth", "convnext"] = field(default="mmearth", metadata=doc(
        "Encoder stem: MMEarth's 3x3-conv stem or ConvNeXt's patchify stem"))

    @property
    def pretext_set(self) -> PretextSet:
        return resolve_pretext(self.pretext)

    def validate(self) -> None:
        # The stem has stride patch/8 and three 2x downsamplings follow: one cell per patch.
        _require(self.patch_size > 0 and self.patch_size % 8 == 0, "patch_size",
                 f"must be a multiple of 8 (8, 16, 32…), got {self.patch_size}")
        _require(self.img_size > 0 and self.img_size % self.patch_size == 0, "img_size",
                 f"{self.img_size} is not a multiple of patch_size {self.patch_size}")
        _require(0 <= self.mask_ratio < 1, "mask_ratio",
                 f"must be in [0, 1), got {self.mask_ratio}")
        _require(self.decoder_dim > 0, "decoder_dim", "must be positive")
        try:
            resolve_pretext(self.pretext)
        except ValueError as e:
            raise ConfigError(str(e), "pretext") from None


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
    betas: tuple[float, float] = field(default=(0.9, 0.95), metadata=doc("AdamW betas"))
    warmup_epochs: float = field(default=1.0, metadata=doc("Epochs of linear warm-up"))
    epochs: float = field(default=4.0, metadata=doc("Training length in epochs"))
    min_lr: float = field(default=0.0, metadata=doc("Learning rate at the end of the decay"))

    def validate(self) -> None:
        _require(self.base_lr > 0, "base_lr", "must be positive")
        _require(self.lr is None or self.lr > 0, "lr", "must be positive or null")
        _require(self.weight_decay >= 0, "weight_decay", "must be 0 or more")
        _require(all(0 <= b < 1 for b in self.betas), "betas", "each beta must be in [0, 1)")
        _require(self.epochs > 0, "epochs", "must be positive")
        _require(0 <= self.warmup_epochs <= self.epochs, "warmup_epochs",
                 f"must be between 0 and epochs ({self.epochs}), got {self.warmup_epochs}")
        _require(self.min_lr >= 0, "min_lr", "must be 0 or more")


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

    def validate(self) -> None:
        for key in ("batch_size", "accumulation", "checkpoint_every", "log_every"):
            _require(getattr(self, key) >= 1, key, "must be 1 or more")
        for key in ("figure_every", "probe_every"):
            _require(getattr(self, key) >= 0, key, "must be 0 (never) or more")
        _require(self.max_steps is None or self.max_steps >= 1, "max_steps",
                 "must be 1 or more, or null")


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
        _require(self.num_workers >= 1, "num_workers", "must be 1 or more")
        _require(self.cpus_per_worker > 0, "cpus_per_worker", "must be positive")
        _require(self.data_cpus >= 0, "data_cpus", "must be 0 or more")
        _require(self.max_failures >= -1, "max_failures", "must be -1 (unlimited) or more")


@dataclass(frozen=True)
class MlflowConfig:
    tracking_uri: str = field(default="", metadata=doc(
        "MLflow server; empty: MLFLOW_TRACKING_URI, else sqlite:///<cache>/mlflow.db"))
    experiment: str = field(default="", metadata=doc("MLflow experiment; empty: name"))
    register_as: str = field(default="mpmae-encoder", metadata=doc(
        "Registered model name for the encoder; empty: don't register"))
    system_metrics: bool = field(default=True, metadata=doc(
        "Log CPU/GPU/memory usage next to the training metrics"))


@dataclass(frozen=True)
class PretrainConfig:
    name: str = field(default="demo", metadata=doc("Experiment and run name base"))
    run_name: str = field(default="", metadata=doc(
        "Run name; empty: name + timestamp. Reusing a run name resumes that run"))
    data: DataConfig = field(default_factory=DataConfig, metadata=doc("Training data"))
    storage: StorageConfig = field(default_factory=StorageConfig, metadata=doc(
        "Where runs and checkpoints go"))
    model: ModelConfig = field(default_factory=ModelConfig, metadata=doc(
        "The MP-MAE model and its pretext tasks"))
    optim: OptimConfig = field(default_factory=OptimConfig, metadata=doc(
        "Optimizer and learning-rate schedule"))
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig, metadata=doc(
        "The training loop"))
    scaling: ScalingConfig = field(default_factory=ScalingConfig, metadata=doc(
        "Ray cluster resources"))
    mlflow: MlflowConfig = field(default_factory=MlflowConfig, metadata=doc(
        "Experiment tracking"))

    @property
    def effective_batch(self) -> int:
        """Samples per optimizer step across all workers."""
        return self.train.batch_size * self.train.accumulation * self.scaling.num_workers

    @property
    def resolved_lr(self) -> float:
        if self.optim.lr is not None:
            return self.optim.lr
        return self.optim.base_lr * self.effective_batch / 256

    def validate(self) -> None:
        _check_name(self.name, "name")
        if self.run_name:
            _check_name(self.run_name, "run_name")
        _require(self.model.img_size <= self.data.tile_size, "model.img_size",
                 f"{self.model.img_size} is larger than data.tile_size {self.data.tile_size}")
