"""The encoder release at the end of a run: written next to the checkpoints, logged to MLflow."""

from __future__ import annotations

import tempfile
from pathlib import Path

from mpmae.data.format.band_stats import stats_key
from mpmae.modalities import S2_BANDS, S2_LEVELS, band_indices
from mpmae.model import ConvNeXtV2Encoder, save_encoder
from mpmae.storage import Location
from mpmae.train.config import PretrainConfig

RELEASE_DIR = "encoder"


def release_metadata(cfg: PretrainConfig, stats: dict, bands: tuple[str, ...]) -> dict:
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
            "trained_on": cfg.data.uri or "synthetic world", "run_name": cfg.run_name}


def export_encoder(encoder: ConvNeXtV2Encoder, cfg: PretrainConfig, stats: dict,
                   run_dir: Location) -> str:
    """Write the release to ``run_dir/encoder`` (folder or s3://), log and register it in
    the active MLflow run; returns the release URI."""
    from mpmae.track.registry import log_encoder

    pretext = cfg.model.pretext_set
    target = run_dir.join(RELEASE_DIR)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_encoder(encoder, Path(tmp) / RELEASE_DIR,
                              metadata=release_metadata(cfg, stats, pretext.input_bands))
        for file in sorted(folder.iterdir()):
            target.join(file.name).write_bytes_atomic(file.read_bytes())
        log_encoder(folder, register_as=cfg.mlflow.register_as, model=cfg.model)
    return target.uri
