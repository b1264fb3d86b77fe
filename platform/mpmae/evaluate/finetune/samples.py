"""Raw GEO-Bench (v1 or 2) samples for a fine-tune, read one at a time through the same
band match, normalisation and padding as the frozen protocols
(:func:`mpmae.evaluate.command.inputs.load_split`)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from mpmae.data.geobench.bands import BandMatch
from mpmae.evaluate.command.inputs import Normaliser, load_split
from mpmae.evaluate.command.plan import Dataset as BenchDataset
from mpmae.evaluate.command.plan import open_dataset


class SampleSet(Dataset):
    """``(x, y)`` of each named sample: x (C, H, W) padded to the patch size, y as
    ``load_split`` gives it (class index, multi-hot vector or (H, W) class map)."""

    def __init__(self, folder: str, names: tuple[str, ...], match: BandMatch,
                 stats: Normaliser, patch: int) -> None:
        self.folder, self.names = folder, names
        self.match, self.stats, self.patch = match, stats, patch
        self._dataset: BenchDataset | None = None  # opened in the process that reads

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        if self._dataset is None:
            self._dataset = open_dataset(self.folder)
        inputs = load_split(self._dataset, (self.names[index],), self.match, self.stats,
                            self.patch)
        return inputs.x[0], inputs.y[0]


class ResumableSampler(DistributedSampler):
    """A worker's share of the epoch's order, less its first ``skip`` samples: those that a
    preempted session trained on, left unread when the epoch resumes."""

    skip = 0

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.skip, None)

    def __len__(self) -> int:
        return max(0, super().__len__() - self.skip)


def train_loader(samples: SampleSet, batch: int, seed: int, rank: int, world: int,
                 workers: int) -> DataLoader:
    """Shuffled by (seed, epoch) — call ``loader.sampler.set_epoch`` — and split over the
    ``world`` workers, so a resumed epoch sees the order it would have seen; set
    ``loader.sampler.skip`` to leave out the samples a preempted epoch already trained on."""
    sampler = ResumableSampler(samples, num_replicas=world, rank=rank, shuffle=True,
                               seed=seed)
    return DataLoader(samples, batch_size=batch, sampler=sampler, num_workers=workers,
                      persistent_workers=workers > 0)


def eval_loader(samples: SampleSet, batch: int, workers: int) -> DataLoader:
    """Every sample once, in order."""
    return DataLoader(samples, batch_size=batch, shuffle=False, num_workers=workers)


def first_samples(samples: SampleSet, count: int) -> tuple[Tensor, Tensor]:
    """The first ``count`` samples as one batch (for the prediction figure)."""
    items = [samples[i] for i in range(min(count, len(samples)))]
    return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])
