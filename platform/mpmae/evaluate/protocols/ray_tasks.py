"""The Ray work of an evaluation: one embedding job per (encoder, dataset), then one
scoring job per (partition, seed) on those embeddings (the encoder is frozen, so they are
computed once). The embedding job asks for a GPU when the cluster has one; the scoring
jobs train small heads (or fit the logistic probe) on a CPU each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from mpmae.data.geobench.bands import BandMatch
from mpmae.evaluate.command.inputs import Normaliser, load_split
from mpmae.evaluate.command.plan import open_dataset
from mpmae.evaluate.config import EvaluateConfig
from mpmae.evaluate.protocols.frozen import Scored, protocol_score
from mpmae.evaluate.protocols.segmentation_head import stage_maps
from mpmae.model import ConvNeXtV2Encoder


@dataclass(frozen=True)
class Embedded:
    """Every needed sample's features and label, by sample name. ``x``: the pooled
    embedding (one tensor), or the stage maps a segmentation head reads (one per stage)."""

    names: dict[str, int]  # sample name → row
    x: list[Tensor]
    y: Tensor
    input_size: tuple[int, int]  # (H, W) the encoder saw, after any padding

    def rows(self, names: tuple[str, ...]) -> tuple[list[Tensor], Tensor]:
        index = torch.tensor([self.names[n] for n in names], dtype=torch.long)
        return [x[index] for x in self.x], self.y[index]


def embed_dataset(encoder: ConvNeXtV2Encoder, folder: str, names: tuple[str, ...],
                  match: BandMatch, stats: Normaliser, batch: int,
                  stages: bool = False) -> Embedded:
    """Read, normalise and embed ``names`` of the dataset at ``folder`` on the best device
    (``stages``: keep the stage maps instead of the pooled embedding)."""
    from mpmae.train.online_probe import embed

    device = "cuda" if torch.cuda.is_available() else "cpu"
    encoder = encoder.to(device).eval()
    dataset = open_dataset(folder)
    parts, ys, size = [], [], (0, 0)
    for start in range(0, len(names), batch):  # a batch at a time: memory stays bounded
        inputs = load_split(dataset, names[start : start + batch], match, stats,
                            encoder.patch_size)
        x = inputs.x.to(device)
        size = tuple(x.shape[-2:])
        parts.append(mean_over_dates(
            (lambda b: stage_maps(encoder, b)) if stages else (lambda b: [embed(encoder, b)]),
            x, inputs.dates))
        ys.append(inputs.y)
    features = [torch.cat(stage) for stage in zip(*parts, strict=True)]
    return Embedded({n: i for i, n in enumerate(names)}, features, torch.cat(ys), size)


def mean_over_dates(features: Callable[[Tensor], list[Tensor]], x: Tensor,
                    dates: Tensor | None = None) -> list[Tensor]:
    """``features`` of (N, C, H, W) inputs; of a dated series (N, T, C, H, W), each real
    date's (the first ``dates[i]`` of sample i) with the frozen encoder, averaged over that
    sample's dates. Our documented choice for dated datasets: a frozen encoder that saw
    single dates in pretraining sees single dates, and zero-padded dates are not averaged
    in."""
    if x.ndim == 4:
        return features(x)
    n, most = x.shape[:2]
    counts = torch.full((n,), most) if dates is None else dates.to(x.device)
    real = torch.arange(most, device=x.device)[None] < counts[:, None]  # (N, T)
    owner = torch.arange(n, device=x.device)[:, None].expand(n, most)[real]
    means = []
    for f in features(x[real]):  # (M, …): every real date of every sample
        total = torch.zeros((n, *f.shape[1:]), dtype=torch.float32, device=f.device)
        total.index_add_(0, owner.to(f.device), f.float())
        shape = (n,) + (1,) * (f.ndim - 1)
        means.append((total / counts.to(f.device).view(shape)).to(f.dtype))
    return means


def score_cell(embedded: Embedded, train: tuple[str, ...], test: tuple[str, ...], kind: str,
               n_classes: int, seed: int, cfg: EvaluateConfig,
               valid: tuple[str, ...] = (), metric: str = "") -> Scored:
    """One (partition, seed) of one protocol (``valid``: the samples protocol logistic
    chooses its L2 on; ``metric``: the scene labels' metric, empty: GEO-Bench v1's)."""
    torch.set_num_threads(1)  # many cells share a node's cores
    return protocol_score(cfg, kind, embedded.rows(train), embedded.rows(test), n_classes,
                          seed, embedded.input_size,
                          embedded.rows(valid) if valid else None, metric)


# Outside any placement group of the caller: in a Tune trial (a sweep's objective) that
# group holds only the trial driver's share of a CPU, which no job fits in.
UNGROUPED = {"scheduling_strategy": "DEFAULT"}


def remote_options() -> dict:
    """One GPU for an embedding job when the cluster has any, else one CPU."""
    import ray

    device = {"num_gpus": 1} if ray.cluster_resources().get("GPU", 0) else {"num_cpus": 1}
    return {**UNGROUPED, **device}


def scoring_options() -> dict:
    """A CPU for a scoring job: its head is small."""
    return {**UNGROUPED, "num_cpus": 1}
