"""The online linear probe: how linearly separable a frozen encoder's embeddings make a
labelled set.

Pretext sets cannot be compared by their losses (each sums different tasks), so a sweep
compares them by this probe: embed the labelled set's train and test splits with the frozen
encoder, fit a multinomial logistic regression on the train embeddings, report test accuracy.
Sentinel-2 goes through the training :class:`~mpmae.data.stream.normalise.Normaliser` with the
*training* data's statistics and a centre crop, so the encoder sees what it was trained on.
Everything is full-batch and seeded: the same encoder gives the same accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq
import torch
from torch import Tensor, nn

from mpmae.data.format.manifest import DatasetError
from mpmae.data.format.schema import LABEL_COLUMN
from mpmae.data.stream.normalise import S2_LEVEL_COLUMN, Normaliser
from mpmae.data.stream.tile_dataset import TileDataset
from mpmae.modalities import PretextSet
from mpmae.storage import StorageOptions

PROBE_SPLITS = ("train", "test")
EMBED_BATCH = 128
LBFGS_STEPS = 100
L2_PENALTY = 1e-3


@dataclass(frozen=True)
class ProbeSet:
    """Normalised, centre-cropped images (N, C, S, S) and labels (N,) of both splits."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int


def load_probe_set(uri: str, stats: dict, input_bands: tuple[str, ...], img_size: int,
                   storage: StorageOptions | None = None, max_tiles: int = 512) -> ProbeSet:
    """Read the first ``max_tiles`` tiles of each split of a labelled set at ``uri`` and
    normalise them with ``stats`` (the pretraining data's band statistics)."""
    dataset = TileDataset.open(uri, storage, check=False)
    labels = dataset.manifest.labels
    if not labels:
        raise DatasetError(f"{uri} holds no labels: a probe needs a labelled set such as the "
                         "synthetic world's downstream/ folder")
    missing = [s for s in PROBE_SPLITS if s not in dataset.manifest.splits]
    if missing:
        raise DatasetError(f"{uri} lacks the split(s) {missing} a probe fits and scores on: "
                           "point the probe at a labelled set with train and test splits")
    normaliser = Normaliser(stats, PretextSet("probe", ("sentinel2",), input_bands),
                            crop=img_size).eval()
    train, test = (_read_split(dataset, split, normaliser, max_tiles) for split in PROBE_SPLITS)
    return ProbeSet(*train, *test, num_classes=len(labels))


def _read_split(dataset: TileDataset, split: str, normaliser: Normaliser,
                max_tiles: int) -> tuple[Tensor, Tensor]:
    tables = []
    for path in dataset.shard_paths(split):
        tables.append(pq.read_table(path, filesystem=dataset.root.fs,
                                    columns=["sentinel2", "s2_type", LABEL_COLUMN]))
        if sum(t.num_rows for t in tables) >= max_tiles:
            break
    rows = min(sum(t.num_rows for t in tables), max_tiles)
    s2 = np.concatenate([t.column("sentinel2").combine_chunks().to_numpy_ndarray()
                         for t in tables])[:rows]
    level = np.concatenate([t.column("s2_type").to_numpy(zero_copy_only=False)
                            for t in tables])[:rows]
    label = np.concatenate([t.column(LABEL_COLUMN).to_numpy() for t in tables])[:rows]
    with torch.no_grad():
        images = normaliser({"sentinel2": torch.from_numpy(s2),
                             S2_LEVEL_COLUMN: torch.from_numpy(level == "l2a")})["image"]
    return images, torch.from_numpy(label.astype(np.int64))


@torch.no_grad()
def embed(encoder: nn.Module, images: Tensor) -> Tensor:
    """Pooled embeddings (N, D) in float32, in eval mode, restoring the encoder's mode."""
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    try:
        parts = [encoder.embed(images[i : i + EMBED_BATCH].to(device)).float().cpu()
                 for i in range(0, len(images), EMBED_BATCH)]
    finally:
        encoder.train(was_training)
    return torch.cat(parts)


def linear_probe_accuracy(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor,
                          num_classes: int) -> float:
    """Test accuracy of a multinomial logistic regression fitted on standardised train
    features by full-batch L-BFGS (deterministic: zero init, no sampling)."""
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    head = nn.Linear(train_x.shape[1], num_classes, dtype=train_x.dtype)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    optimizer = torch.optim.LBFGS(head.parameters(), max_iter=LBFGS_STEPS,
                                  line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(head(train_x), train_y)
        loss = loss + L2_PENALTY * head.weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        return float((head(test_x).argmax(1) == test_y).float().mean())


def probe_encoder(encoder: nn.Module, probe: ProbeSet) -> float:
    """Linear-probe test accuracy of a frozen encoder on a loaded probe set."""
    return linear_probe_accuracy(embed(encoder, probe.train_x), probe.train_y,
                                 embed(encoder, probe.test_x), probe.test_y, probe.num_classes)
