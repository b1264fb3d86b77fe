"""The ``mpmae evaluate`` config: the protocols' recipes and what to evaluate on.

Defaults are MMEarth's downstream recipe (``mpmae evaluate --help-config`` lists every key).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mpmae.config import doc, require
from mpmae.evaluate.finetune.config import FinetuneConfig, UnetConfig
from mpmae.storage import StorageConfig
from mpmae.track.config import MlflowConfig


@dataclass(frozen=True)
class KnnConfig:
    k: int = field(default=20, metadata=doc("Neighbours that vote"))
    temperature: float = field(default=0.07, metadata=doc(
        "Vote weight exp(cosine similarity / temperature)"))

    def validate(self) -> None:
        require(self.k >= 1, "k", "must be 1 or more")
        require(self.temperature > 0, "temperature", "must be positive")


@dataclass(frozen=True)
class LinearConfig:
    """MMEarth's linear probe: lr 8e-4 at batch 1024 (blr 2e-4 × batch / 256), wd 0.3,
    cosine to 1e-6 without warm-up, label smoothing 0.2, 100 epochs, last epoch scored."""

    blr: float = field(default=2e-4, metadata=doc(
        "Learning rate per 256 samples of batch"))
    batch_size: int = field(default=1024, metadata=doc(
        "Embeddings per step (all of them when the train split is smaller)"))
    weight_decay: float = field(default=0.3, metadata=doc("AdamW weight decay"))
    epochs: int = field(default=100, metadata=doc("Epochs over the cached embeddings"))
    min_lr: float = field(default=1e-6, metadata=doc("Learning rate at the end of the decay"))
    label_smoothing: float = field(default=0.2, metadata=doc(
        "Label smoothing of the cross-entropy (of the BCE for multi-label)"))

    def validate(self) -> None:
        require(self.blr > 0, "blr", "must be positive")
        require(self.batch_size >= 1, "batch_size", "must be 1 or more")
        require(self.weight_decay >= 0, "weight_decay", "must be 0 or more")
        require(self.epochs >= 1, "epochs", "must be 1 or more")
        require(self.min_lr >= 0, "min_lr", "must be 0 or more")
        require(0 <= self.label_smoothing < 1, "label_smoothing", "must be in [0, 1)")


@dataclass(frozen=True)
class LogisticConfig:
    """A converged linear probe: multinomial logistic regression (a sigmoid per label for
    multi-label) on embeddings standardised with the train split's statistics, full-batch
    L-BFGS with a strong-Wolfe line search, its L2 strength chosen on the valid split from
    a log-spaced grid; the chosen fit is the one on train (docs/evaluate.md says why)."""

    l2_min: float = field(default=1e-6, metadata=doc(
        "Weakest L2 strength of the grid (on the mean loss, bias not penalised)"))
    l2_max: float = field(default=10.0, metadata=doc("Strongest L2 strength of the grid"))
    l2_steps: int = field(default=15, metadata=doc(
        "Grid points, log-spaced from l2_max down to l2_min (each fit starts from the last)"))
    max_iter: int = field(default=500, metadata=doc("L-BFGS iterations per grid point, at most"))
    tolerance: float = field(default=1e-4, metadata=doc(
        "Converged when no gradient entry exceeds this (in the whitened coordinates the "
        "fit runs in)"))

    def validate(self) -> None:
        require(self.l2_min > 0, "l2_min", "must be positive")
        require(self.l2_max >= self.l2_min, "l2_max", "must be l2_min or more")
        require(self.l2_steps >= 1, "l2_steps", "must be 1 or more")
        require(self.max_iter >= 1, "max_iter", "must be 1 or more")
        require(self.tolerance > 0, "tolerance", "must be positive")


@dataclass(frozen=True)
class SegmentationConfig:
    """A light head on the frozen encoder's stage-2…4 maps: a 1x1 conv of each to ``width``
    channels, upsampled to stage 2 and summed, GELU, a 1x1 conv to the classes, upsampled
    to the input. Cross-entropy without smoothing; scored by mIoU (macro Jaccard). On a
    pixel-regression dataset the same head with one output, MSE, scored by RMSE."""

    width: int = field(default=64, metadata=doc("Channels of the head"))
    lr: float = field(default=1e-3, metadata=doc("AdamW learning rate (cosine decay)"))
    weight_decay: float = field(default=0.01, metadata=doc("AdamW weight decay"))
    epochs: int = field(default=30, metadata=doc("Epochs over the cached stage maps"))
    batch_size: int = field(default=32, metadata=doc("Samples per step"))

    def validate(self) -> None:
        for key in ("width", "epochs", "batch_size"):
            require(getattr(self, key) >= 1, key, "must be 1 or more")
        require(self.lr > 0, "lr", "must be positive")
        require(self.weight_decay >= 0, "weight_decay", "must be 0 or more")


@dataclass(frozen=True)
class GeoBench2EvalConfig:
    """How GEO-Bench-2 datasets reach the encoder (GEO-Bench v1's are unaffected)."""

    normalise: Literal["train_zscore", "satmae", "clip_rescale"] = field(
        default="train_zscore", metadata=doc(
            "train_zscore: a z-score per band by the train split's statistics; satmae / "
            "clip_rescale: the benchmark's own scheme with its published statistics file "
            "(dataset_stats_<scheme>/<name>/<name>_stats.json under geobench2.stats)"))
    stats: str = field(default="", metadata=doc(
        "Folder holding the benchmark's dataset_stats_satmae/ and dataset_stats_clip_rescale/ "
        "(GEO-Bench-2's geobench_v2/datamodules); empty: each dataset folder's parent"))


@dataclass(frozen=True)
class EvaluateConfig:
    protocol: Literal["knn", "linear", "logistic", "finetune"] = field(
        default="linear", metadata=doc(
            "knn: cosine kNN on pooled embeddings; linear: a fresh linear head on them, "
            "MMEarth's recipe (on a segmentation dataset: a light head on the frozen stage "
            "maps); logistic: logistic regression on them fitted to convergence, its L2 "
            "chosen on the valid split (classification only); finetune: every layer trained "
            "on raw samples (on a segmentation dataset: a U-Net decoder)"))
    partitions: list[str] = field(default_factory=lambda: ["default"], metadata=doc(
        "GEO-Bench partitions to train on (label efficiency: 0.01x_train … 1.00x_train); "
        "every one is scored on the default partition's whole test split"))
    seeds: int = field(default=3, metadata=doc(
        "Repeats of the head's training or fine-tune (kNN has no training: it runs once)"))
    normalise: Literal["dataset", "encoder"] = field(default="dataset", metadata=doc(
        "dataset: the dataset's band_stats.json (the paper's choice); encoder: the "
        "encoder's pretraining statistics (its L1C Sentinel-2 statistics)"))
    geobench2: GeoBench2EvalConfig = field(default_factory=GeoBench2EvalConfig, metadata=doc(
        "GEO-Bench-2 datasets: their normalisation scheme"))
    embed_batch: int = field(default=128, metadata=doc("Images per embedding batch"))
    results: str = field(default="", metadata=doc(
        "Also write the results as JSON to this file; empty: MLflow and the console only"))
    knn: KnnConfig = field(default_factory=KnnConfig, metadata=doc("The kNN protocol"))
    linear: LinearConfig = field(default_factory=LinearConfig, metadata=doc(
        "The linear probe's recipe"))
    logistic: LogisticConfig = field(default_factory=LogisticConfig, metadata=doc(
        "The converged logistic probe (protocol logistic)"))
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig, metadata=doc(
        "The frozen-encoder segmentation head (protocol linear on a segmentation dataset)"))
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig, metadata=doc(
        "The fine-tune's recipe, its workers and checkpoints (protocol finetune)"))
    unet: UnetConfig = field(default_factory=UnetConfig, metadata=doc(
        "The U-Net segmentation fine-tune's recipe (protocol finetune on a segmentation "
        "dataset)"))
    mlflow: MlflowConfig = field(default_factory=MlflowConfig, metadata=doc(
        "Where the evaluation runs are tracked (experiment: empty → mpmae-evaluate)"))
    storage: StorageConfig = field(default_factory=StorageConfig, metadata=doc(
        "Where pretraining runs live, for an ENCODER given as a run name"))
    address: str = field(default="", metadata=doc(
        "Ray cluster address; empty: RAY_ADDRESS, else a local Ray"))

    def validate(self) -> None:
        require(len(self.partitions) > 0, "partitions", "needs at least one partition")
        require(len(set(self.partitions)) == len(self.partitions), "partitions",
                f"names a partition twice: {self.partitions}")
        require(self.seeds >= 1, "seeds", "must be 1 or more")
        require(self.embed_batch >= 1, "embed_batch", "must be 1 or more")
        require(self.normalise == "dataset" or self.geobench2.normalise == "train_zscore",
                "geobench2.normalise", f"{self.geobench2.normalise} is a dataset-side scheme; "
                "it needs normalise=dataset, not encoder")
