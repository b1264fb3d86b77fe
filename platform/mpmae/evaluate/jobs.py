"""The Ray work of an evaluation: one embedding job per (encoder, dataset), then one
scoring job per (partition, seed) on those embeddings (the encoder is frozen, so they are
computed once). Jobs ask for a GPU when the cluster has one."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mpmae.evaluate.config import EvaluateConfig
from mpmae.evaluate.geobench.bands import BandMatch
from mpmae.evaluate.geobench.dataset import GeoBenchDataset
from mpmae.evaluate.geobench.normalise import InputStats
from mpmae.evaluate.inputs import load_split
from mpmae.evaluate.metrics import Score
from mpmae.evaluate.protocols import protocol_score
from mpmae.model import ConvNeXtV2Encoder

TEST_SPLIT = "test"


@dataclass(frozen=True)
class Embedded:
    """Every needed sample's pooled embedding and label, by sample name."""

    names: dict[str, int]  # sample name → row
    x: Tensor
    y: Tensor

    def rows(self, names: tuple[str, ...]) -> tuple[Tensor, Tensor]:
        index = torch.tensor([self.names[n] for n in names], dtype=torch.long)
        return self.x[index], self.y[index]


def embed_dataset(encoder: ConvNeXtV2Encoder, folder: str, names: tuple[str, ...],
                  match: BandMatch, stats: InputStats, batch: int) -> Embedded:
    """Read, normalise and embed ``names`` of the dataset at ``folder`` on the best device."""
    from mpmae.evaluate.probe import embed

    device = "cuda" if torch.cuda.is_available() else "cpu"
    encoder = encoder.to(device).eval()
    dataset = GeoBenchDataset.open(folder)
    xs, ys = [], []
    for start in range(0, len(names), batch):  # a batch at a time: memory stays bounded
        inputs = load_split(dataset, names[start : start + batch], match, stats,
                            encoder.patch_size)
        xs.append(embed(encoder, inputs.x))
        ys.append(inputs.y)
    return Embedded({n: i for i, n in enumerate(names)}, torch.cat(xs), torch.cat(ys))


def score_cell(embedded: Embedded, train: tuple[str, ...], test: tuple[str, ...], kind: str,
               n_classes: int, seed: int, cfg: EvaluateConfig) -> Score:
    """One (partition, seed) of one protocol."""
    torch.set_num_threads(1)  # many cells share a node's cores
    return protocol_score(cfg.protocol, kind, embedded.rows(train), embedded.rows(test),
                          n_classes, seed, cfg.knn, cfg.linear)


def remote_options() -> dict:
    """One GPU per job when the cluster has any, else one CPU."""
    import ray

    return {"num_gpus": 1} if ray.cluster_resources().get("GPU", 0) else {"num_cpus": 1}
