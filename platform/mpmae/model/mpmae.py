"""The assembled Multi-Pretext Masked Autoencoder.

mask → sparse ConvNeXt V2 encoder → decoder (shared by all tasks, or one per task) →
one head per pretext task → per-task losses on hidden patches → loss weighting.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mpmae.modalities import MODALITIES, TaskKind
from mpmae.model.blocks import GRN
from mpmae.model.config import MPMAEConfig
from mpmae.model.convnextv2 import build_encoder
from mpmae.model.decoder import Decoder
from mpmae.model.heads import build_cell_norm, build_heads
from mpmae.model.init import INITS
from mpmae.model.losses import task_loss
from mpmae.model.masking import PatchMask, random_patch_mask
from mpmae.model.patches import unpatchify
from mpmae.model.weighting import build_weighting

SHARED_DECODER = "shared"


@dataclass
class MPMAEOutput:
    """What one forward returns.

    ``loss``: weighted total. ``task_losses``: unweighted loss per task. ``task_weights``:
    the effective weight per task (exp(−sᵢ), or 1), detached. ``mask``: (B, gh, gw) bool,
    True = hidden. ``predictions``: per pixel task (B, C, H, W) — values for regression
    (Sentinel-2 in per-patch normalised units, see ``losses.denormalise_patches``),
    logits for classes; per image task (B, C).
    """

    loss: Tensor
    task_losses: dict[str, Tensor]
    task_weights: dict[str, Tensor]
    mask: Tensor
    predictions: dict[str, Tensor]


class MPMAE(nn.Module):
    """ConvNeXt V2 MP-MAE. ``model.encoder`` is the product; the rest exists for pretraining.

    Call it on a contract batch: ``out = model(batch, generator=g)``; ``out.loss.backward()``.
    """

    def __init__(self, config: MPMAEConfig) -> None:
        super().__init__()
        self.config = config
        self.pretext = config.pretext_set
        self.encoder = build_encoder(
            config.size, self.pretext.in_chans, config.patch_size, config.stem
        )
        # The embedding LayerNorm is for downstream use; the MAE never reaches it, and DDP
        # refuses trainable parameters that get no gradient.
        self.encoder.norm.requires_grad_(False)
        names = (SHARED_DECODER,) if config.share_decoder else self.pretext.tasks
        self.decoders = nn.ModuleDict(
            {
                name: Decoder(self.encoder.num_features, config.decoder_dim, config.decoder_depth)
                for name in names
            }
        )
        self.heads = build_heads(self.pretext, config.decoder_dim, config.patch_size,
                                 config.image_head_norm)
        self.cell_norm = build_cell_norm(self.pretext, config.decoder_dim,
                                         config.image_head_norm)
        self.weighting = build_weighting(config.loss_weighting, self.pretext.tasks)
        INITS[config.init](self)

    @property
    def grid(self) -> tuple[int, int]:
        side = self.config.img_size // self.config.patch_size
        return side, side

    def random_mask(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> PatchMask:
        """A fresh mask at the configured ratio over the patch grid."""
        return random_patch_mask(
            batch_size, self.grid, self.config.mask_ratio, generator=generator, device=device
        )

    def forward(
        self,
        batch: dict[str, Tensor],
        generator: torch.Generator | None = None,
        mask: Tensor | PatchMask | None = None,
    ) -> MPMAEOutput:
        """``batch`` follows the normalised batch contract of ``mpmae.modalities``.

        The mask is drawn from ``generator`` unless given (bool (B, gh, gw), True = hidden).
        """
        x = self._check_batch(batch)
        if mask is None:
            mask = self.random_mask(x.shape[0], generator, x.device)
        elif not isinstance(mask, PatchMask):
            mask = PatchMask.from_hidden(mask)
        features = self.encoder.forward_masked(x, mask)
        decoded = {name: dec(features, mask.hidden) for name, dec in self.decoders.items()}
        hidden = mask.hidden.flatten(1)
        losses, counts, predictions = {}, {}, {}
        for task, head in self.heads.items():
            grid = decoded[SHARED_DECODER if self.config.share_decoder else task]
            if self.cell_norm is not None and not MODALITIES[task].kind.is_pixel:
                grid = self.cell_norm(grid)  # every cell, before the head's pooling
            pred = head(grid)
            losses[task], counts[task] = task_loss(
                task, pred, batch[task], hidden, self.config.patch_size,
                self.config.missing_targets,
            )
            if MODALITIES[task].kind.is_pixel:
                pred = unpatchify(pred, self.config.patch_size, self.grid)
            predictions[task] = pred
        total, weights = self.weighting(losses, counts)
        return MPMAEOutput(total, losses, weights, mask.hidden, predictions)

    def _check_batch(self, batch: dict[str, Tensor]) -> Tensor:
        """The encoder input, after checking every tensor against the batch contract."""
        missing = [k for k in ("image", *self.pretext.tasks) if k not in batch]
        if missing:
            raise KeyError(
                f"batch lacks {missing}; pretext set {self.pretext.name!r} needs 'image' and "
                f"a target per task {list(self.pretext.tasks)}"
            )
        size = self.config.img_size
        expected = {"image": (self.pretext.in_chans, size, size)}
        for task in self.pretext.tasks:
            kind, channels = MODALITIES[task].kind, self.pretext.output_channels(task)
            expected[task] = {
                TaskKind.PIXEL_REGRESSION: (channels, size, size),
                TaskKind.PIXEL_CLASSES: (size, size),
                TaskKind.IMAGE_REGRESSION: (channels,),
                TaskKind.IMAGE_CLASS: (),
            }[kind]
        batch_size = batch["image"].shape[0]
        for key, shape in expected.items():
            if tuple(batch[key].shape) != (batch_size, *shape):
                raise ValueError(
                    f"batch[{key!r}] has shape {tuple(batch[key].shape)}, expected "
                    f"{(batch_size, *shape)} (see the batch contract in mpmae.modalities)"
                )
        return batch["image"]

    def param_groups(
        self, weight_decay: float, decay_grn_and_mask_token: bool = False
    ) -> list[dict]:
        """AdamW groups: decay on weight matrices and kernels only.

        Biases, norm and GRN scales, the mask token and the log-variances sᵢ (all ≤ 1-D
        here) get none, the usual rule (timm's ``param_groups_weight_decay``). The MMEarth
        reference applies that same rule, but its GRN γ/β (1×C) and mask token (1×C×1×1)
        are not 1-D there, so they are decayed: ``decay_grn_and_mask_token`` does that.
        """
        also_decayed = set()
        if decay_grn_and_mask_token:
            also_decayed = {id(p) for m in self.modules() if isinstance(m, GRN)
                            for p in m.parameters()}
            also_decayed |= {id(d.mask_token) for d in self.decoders.values()}
        decay, no_decay = [], []
        for param in self.parameters():
            if param.requires_grad:
                decayed = param.ndim > 1 or id(param) in also_decayed
                (decay if decayed else no_decay).append(param)
        return [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]


def build_mpmae(**overrides) -> MPMAE:
    """An MP-MAE from ``MPMAEConfig`` fields, e.g. ``build_mpmae(size="atto", pretext="all")``."""
    return MPMAE(MPMAEConfig(**overrides))
