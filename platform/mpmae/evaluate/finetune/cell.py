"""What one fine-tune cell — (encoder, dataset, partition, seed) — needs to train and score,
as one picklable value handed to its Ray task or Ray Train workers."""

from __future__ import annotations

from dataclasses import dataclass

from mpmae.data.geobench.bands import BandMatch
from mpmae.evaluate.command.inputs import Normaliser
from mpmae.evaluate.finetune.config import FinetuneConfig, UnetConfig
from mpmae.model import ConvNeXtV2Encoder
from mpmae.storage import StorageOptions


@dataclass(frozen=True)
class CellSpec:
    encoder: ConvNeXtV2Encoder
    input_bands: tuple[str, ...]
    folder: str  # the dataset's absolute path: on a cluster it must be shared
    train: tuple[str, ...]
    valid: tuple[str, ...]  # the best-validation record; may be empty
    test: tuple[str, ...]
    match: BandMatch
    stats: Normaliser  # a z-score, or one of GEO-Bench-2's schemes
    kind: str  # classification, multi_label or segmentation
    n_classes: int
    metric: str  # what the test and valid splits are scored by (the dataset plan's metric)
    seed: int
    recipe: FinetuneConfig | UnetConfig  # the training recipe of this kind
    shared: FinetuneConfig  # workers, devices, checkpoints
    cell: str  # the cell's folder (URI)
    storage: StorageOptions

    @property
    def segmentation(self) -> bool:
        return self.kind == "segmentation"
