"""The fine-tuning protocols' recipes (``protocol: finetune``): MMEarth's by default.

``finetune`` is the classification recipe and also holds what both protocols share (the
workers a cell trains on, where its checkpoints live); ``unet`` is the segmentation recipe.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mpmae.config import doc, require
from mpmae.train.preemption import notice_source_problem


@dataclass(frozen=True)
class FinetuneConfig:
    """MMEarth's fine-tune: AdamW, lr = blr × batch / 256 (8e-4 at batch 1024), wd 0.3
    (not on biases, norms and GRN γ/β), layer-wise lr decay 0.9, drop path 0.1, label
    smoothing 0.2, cosine to min_lr without warm-up; the last epoch's model is scored."""

    blr: float = field(default=2e-4, metadata=doc("Learning rate per 256 samples of batch"))
    batch_size: int = field(default=1024, metadata=doc(
        "Samples per optimizer step, all workers together"))
    micro_batch: int = field(default=64, metadata=doc(
        "Samples per forward on one worker (gradients accumulate up to batch_size)"))
    weight_decay: float = field(default=0.3, metadata=doc("AdamW weight decay"))
    layer_decay: float = field(default=0.9, metadata=doc(
        "Layer-wise lr decay: layer i of L trains at lr × layer_decay^(L+1-i)"))
    drop_path: float = field(default=0.1, metadata=doc("Stochastic depth of the encoder"))
    label_smoothing: float = field(default=0.2, metadata=doc(
        "Label smoothing of the cross-entropy (of the BCE for multi-label)"))
    epochs: int = field(default=100, metadata=doc("Epochs over the train split"))
    min_lr: float = field(default=1e-6, metadata=doc("Learning rate at the end of the decay"))
    workers: int = field(default=1, metadata=doc(
        "Workers per (partition, seed) cell; more than 1: DDP with Ray Train"))
    use_gpu: bool | None = field(default=None, metadata=doc(
        "Train on GPUs (bf16 autocast); null: if the cluster has any"))
    loader_workers: int = field(default=2, metadata=doc(
        "Sample-reading processes per worker (0: read in the training process)"))
    max_nonfinite_steps: int = field(default=20, metadata=doc(
        "Steps with a non-finite loss or gradient skipped (on every worker) before the "
        "cell stops; its checkpoints never hold them"))
    keep_checkpoints: int = field(default=2, metadata=doc(
        "Epoch checkpoints kept per cell (an interrupted cell resumes from the newest)"))
    work_dir: str = field(default="", metadata=doc(
        "Folder or s3:// URI for the cells' checkpoints and results; empty: "
        "<storage.root>/evaluate"))
    preemption_notice: str = field(default="", metadata=doc(
        "Besides SIGTERM/SIGINT to the command: a file path whose appearance, or an "
        "http(s) URL whose 200 answer (e.g. a spot instance's metadata), each cell's node "
        "polls as the notice to checkpoint at the current step and stop (exit 75)"))

    def validate(self) -> None:
        problem = notice_source_problem(self.preemption_notice)
        require(problem is None, "preemption_notice", problem or "")
        for key in ("batch_size", "micro_batch", "epochs", "workers", "keep_checkpoints"):
            require(getattr(self, key) >= 1, key, "must be 1 or more")
        require(self.blr > 0, "blr", "must be positive")
        require(self.weight_decay >= 0, "weight_decay", "must be 0 or more")
        require(0 < self.layer_decay <= 1, "layer_decay", "must be in (0, 1]")
        require(0 <= self.drop_path < 1, "drop_path", "must be in [0, 1)")
        require(0 <= self.label_smoothing < 1, "label_smoothing", "must be in [0, 1)")
        require(self.min_lr >= 0, "min_lr", "must be 0 or more")
        require(self.loader_workers >= 0, "loader_workers", "must be 0 or more")
        require(self.max_nonfinite_steps >= 0, "max_nonfinite_steps", "must be 0 or more")
        require(self.batch_size >= self.workers, "batch_size",
                f"{self.batch_size} cannot be split over {self.workers} workers")


@dataclass(frozen=True)
class UnetConfig:
    """MMEarth's segmentation fine-tune: a U-Net decoder over the encoder's stage maps;
    the encoder frozen for the first ``frozen_epochs``, then everything trained; lr = blr ×
    batch / 256, cross-entropy without smoothing; scored by mIoU on the last epoch."""

    blr: float = field(default=1e-2, metadata=doc("Learning rate per 256 samples of batch"))
    batch_size: int = field(default=32, metadata=doc(
        "Samples per optimizer step, all workers together"))
    micro_batch: int = field(default=16, metadata=doc(
        "Samples per forward on one worker (gradients accumulate up to batch_size)"))
    weight_decay: float = field(default=0.3, metadata=doc("AdamW weight decay"))
    layer_decay: float = field(default=0.9, metadata=doc(
        "Layer-wise lr decay of the encoder (the decoder trains at the full lr)"))
    drop_path: float = field(default=0.1, metadata=doc("Stochastic depth of the encoder"))
    epochs: int = field(default=200, metadata=doc("Epochs in all"))
    frozen_epochs: int = field(default=50, metadata=doc(
        "First epochs with the encoder frozen (only the decoder trains)"))
    min_lr: float = field(default=1e-6, metadata=doc("Learning rate at the end of the decay"))
    figure_samples: int = field(default=4, metadata=doc(
        "Test samples in the prediction figure (input RGB, target, prediction); 0: none"))

    def validate(self) -> None:
        for key in ("batch_size", "micro_batch", "epochs"):
            require(getattr(self, key) >= 1, key, "must be 1 or more")
        require(self.blr > 0, "blr", "must be positive")
        require(self.weight_decay >= 0, "weight_decay", "must be 0 or more")
        require(0 < self.layer_decay <= 1, "layer_decay", "must be in (0, 1]")
        require(0 <= self.drop_path < 1, "drop_path", "must be in [0, 1)")
        require(0 <= self.frozen_epochs < self.epochs, "frozen_epochs",
                f"must be 0 or more and below epochs ({self.epochs}): the encoder must "
                "train for at least one epoch")
        require(self.min_lr >= 0, "min_lr", "must be 0 or more")
        require(self.figure_samples >= 0, "figure_samples", "must be 0 or more")
