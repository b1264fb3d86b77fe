"""The encoder release at the end of a run: written next to the checkpoints, logged to MLflow."""

from __future__ import annotations

import tempfile
from pathlib import Path

from mpmae.data.format.band_stats import stats_key
from mpmae.modalities import S2_BANDS, S2_LEVELS, band_indices
from mpmae.model import ConvNeXtV2Encoder, save_encoder
from mpmae.model.release import RELEASE_DIR
from mpmae.storage import Location
from mpmae.train.config import PretrainConfig


def pretraining_choices(cfg: PretrainConfig, precision: str) -> dict[str, str]:
    """The choices where MMEarth's reference code and we may differ, for the model card."""
    m, o = cfg.model, cfg.optim
    init = {"reference": "MMEarth-train's FCMAE init (std 1.0 for depthwise, point-wise, "
                         "decoder projection and pixel-head layers)",
            "convnext": "ConvNeXt V2's own, truncated normal std 0.02 everywhere"}[m.init]
    heads = {"cells": "one shared LayerNorm on every decoded cell, then global average pool "
                      "and a Linear per task (MMEarth's order)",
             "pooled": "global average pool, then a LayerNorm and Linear per task"}
    missing = {"ignore": "left out of the loss",
               "zero": "regressed to z = 0, as MMEarth-train's nan_to_num does"}
    decay = ("decayed, as in the reference" if o.decay_grn_and_mask_token
             else "not decayed (like every vector)")
    return {"model.init": f"{m.init}: {init}",
            "model.image_head_norm": f"{m.image_head_norm}: {heads[m.image_head_norm]}",
            "model.missing_targets": f"{m.missing_targets}: missing pixel-regression targets "
                                     f"(S2, S1, ASTER, canopy) {missing[m.missing_targets]}",
            "optim.decay_grn_and_mask_token": f"{str(o.decay_grn_and_mask_token).lower()}: "
                                              f"GRN gamma/beta and the mask token {decay}",
            "train.precision": f"{cfg.train.precision}: trained in {precision} (the paper: fp32)"}


def release_metadata(cfg: PretrainConfig, stats: dict, bands: tuple[str, ...],
                     precision: str = "fp32") -> dict:
    """Bands and the statistics a user needs to turn raw Sentinel-2 into encoder input."""
    index = band_indices(bands, S2_BANDS)
    normalisation = {
        "recipe": "raw value 0 = no data; z = (raw - mean) / std per band using the level's "
                  "statistics; no data → 0 after z-scoring",
        **{level: {k: [stats[stats_key("sentinel2", level)][k][i] for i in index]
                   for k in ("mean", "std")} for level in S2_LEVELS},
    }
    pretext = cfg.model.pretext
    return {"input_bands": list(bands), "normalisation": normalisation,
            "pretext": pretext if isinstance(pretext, str) else list(pretext),
            "mask_ratio": cfg.model.mask_ratio,
            "trained_on": cfg.data.uri or "synthetic world", "run_name": cfg.run_name,
            "pretraining": pretraining_choices(cfg, precision)}


def export_encoder(encoder: ConvNeXtV2Encoder, cfg: PretrainConfig, stats: dict,
                   run_dir: Location) -> str:
    """Write the release to ``run_dir/encoder`` (folder or s3://), log and register it in
    the active MLflow run; returns the release URI."""
    from mpmae.track.registry import log_encoder

    pretext = cfg.model.pretext_set
    target = run_dir.join(RELEASE_DIR)
    precision = cfg.train.resolved_precision(next(encoder.parameters()).device.type)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_encoder(encoder, Path(tmp) / RELEASE_DIR, metadata=release_metadata(
            cfg, stats, pretext.input_bands, precision))
        for file in sorted(folder.iterdir()):
            target.join(file.name).write_bytes_atomic(file.read_bytes())
        log_encoder(folder, register_as=cfg.mlflow.register_as, model=cfg.model)
    return target.uri
