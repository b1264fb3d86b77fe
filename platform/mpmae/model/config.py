"""The MP-MAE model's config: what ``MPMAE`` is built from and what the ``model`` section
of ``mpmae pretrain`` accepts, one and the same. Its choices are the names in
:mod:`mpmae.model.choices`, which key the implementations' registries; no torch here."""

from __future__ import annotations

from dataclasses import dataclass, field

from mpmae.config import ConfigError, doc, require
from mpmae.modalities import PretextSet, resolve_pretext
from mpmae.model.choices import (
    IMAGE_HEAD_NORMS,
    INIT_NAMES,
    MISSING_TARGETS,
    ImageHeadNorm,
    Init,
    MissingTargets,
    ModelSize,
    Stem,
    Weighting,
    num_kept,
)


@dataclass(frozen=True)
class MPMAEConfig:
    """The model's hyper-parameters. ``pretext`` also fixes the input bands (``in_chans``)."""

    size: ModelSize = field(default="atto", metadata=doc("ConvNeXt V2 encoder size"))
    pretext: str | tuple[str, ...] = field(default="all", metadata=doc(
        "Pretext set (S2, pix, img, all, rgb) or a list of tasks that includes sentinel2"))
    patch_size: int = field(default=8, metadata=doc(
        "Masking patch side in pixels (a multiple of 8)"))
    img_size: int = field(default=56, metadata=doc(
        "Crop side fed to the model (a multiple of patch_size, at most data.tile_size)"))
    mask_ratio: float = field(default=0.6, metadata=doc(
        "Fraction of patches hidden from the encoder"))
    decoder_dim: int = field(default=512, metadata=doc("Decoder width"))
    decoder_depth: int = field(default=1, metadata=doc("ConvNeXt V2 blocks in the decoder"))
    share_decoder: bool = field(default=True, metadata=doc(
        "One decoder shared by all tasks (else one per task)"))
    loss_weighting: Weighting = field(default="uncertainty", metadata=doc(
        "How task losses combine: learned uncertainty weights or a plain sum"))
    stem: Stem = field(default="mmearth", metadata=doc(
        "Encoder stem: MMEarth's 3x3-conv stem or ConvNeXt's patchify stem"))
    init: Init = field(default="convnext", metadata=doc(
        "Weight init. convnext: truncated normal std 0.02 everywhere (ConvNeXt V2's own); "
        "reference: as MMEarth-train's FCMAE, std 1.0 for the encoder's depthwise and "
        "point-wise layers, the decoder projection and depthwise convs and the pixel heads"))
    image_head_norm: ImageHeadNorm = field(default="cells", metadata=doc(
        "Image-level heads (biome, era5, ...). cells: one LayerNorm shared by them on every "
        "decoded cell, then global pool and a Linear per task (MMEarth's order); pooled: "
        "pool, then a LayerNorm and Linear per task"))
    missing_targets: MissingTargets = field(default="ignore", metadata=doc(
        "Missing pixel-regression targets (S2, S1, ASTER, canopy; NaN after z-scoring). "
        "ignore: left out of the loss; zero: regressed to z = 0 as MMEarth-train does"))

    def __post_init__(self) -> None:
        self.validate()  # also when code builds one directly, not only from a config file

    @property
    def pretext_set(self) -> PretextSet:
        return resolve_pretext(self.pretext)

    def validate(self) -> None:
        # The stem has stride patch/8 and three 2x downsamplings follow: one cell per patch.
        require(self.patch_size > 0 and self.patch_size % 8 == 0, "patch_size",
                f"must be a multiple of 8 (8, 16, 32…), got {self.patch_size}")
        require(self.img_size > 0 and self.img_size % self.patch_size == 0, "img_size",
                f"{self.img_size} is not a multiple of patch_size {self.patch_size}")
        require(0 <= self.mask_ratio < 1, "mask_ratio",
                f"must be in [0, 1), got {self.mask_ratio}")
        # The loss is over masked patches only: none masked is a run that learns nothing.
        patches = (self.img_size // self.patch_size) ** 2
        require(num_kept(patches, self.mask_ratio) < patches, "mask_ratio",
                f"{self.mask_ratio} masks no patch of the {patches} in a {self.img_size}px "
                "crop, so the loss is always zero; use a larger ratio (the paper's is 0.6)")
        require(self.decoder_dim > 0, "decoder_dim", "must be positive")
        require(self.decoder_depth > 0, "decoder_depth", "must be positive")
        for key, choices in (("init", INIT_NAMES), ("image_head_norm", IMAGE_HEAD_NORMS),
                             ("missing_targets", MISSING_TARGETS)):
            require(getattr(self, key) in choices, key,
                    f"must be one of {list(choices)}, got {getattr(self, key)!r}")
        try:
            resolve_pretext(self.pretext)
        except ValueError as e:
            raise ConfigError(str(e), "pretext") from None
