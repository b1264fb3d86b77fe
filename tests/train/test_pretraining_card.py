"""The release's model card records how the encoder was pretrained where MMEarth's
reference code and we may differ: init, image-head order, missing targets, decay, precision."""

import json

import numpy as np

from mpmae.config import load_config
from mpmae.data.format.band_stats import stats_key
from mpmae.modalities import S2_INPUT_BANDS, S2_LEVELS
from mpmae.model import build_encoder, save_encoder
from mpmae.train.config import PretrainConfig
from mpmae.train.export import release_metadata

# Statistics per stored band (13), as dataset.json holds them.
STATS = {stats_key("sentinel2", level): {"mean": list(np.arange(13.0)), "std": [1.0] * 13}
         for level in S2_LEVELS}


def _card(tmp_path, precision: str, *overrides: str) -> tuple[str, dict]:
    cfg = load_config(PretrainConfig, None, list(overrides))
    metadata = release_metadata(cfg, STATS, S2_INPUT_BANDS, precision)
    folder = save_encoder(build_encoder("atto"), tmp_path, metadata=metadata)
    return (folder / "README.md").read_text(), json.loads((folder / "config.json").read_text())


def test_the_defaults_are_on_the_card(tmp_path):
    card, config = _card(tmp_path, "fp32")
    assert "\n## How it was pretrained\n" in card
    assert "- `model.image_head_norm` = cells: one shared LayerNorm on every decoded cell" in card
    assert "- `model.missing_targets` = ignore: missing pixel-regression targets" in card
    assert ("- `optim.decay_grn_and_mask_token` = false: GRN gamma/beta and the mask token not "
            "decayed") in card
    assert "- `train.precision` = auto: trained in fp32 (the paper: fp32)" in card
    choices = config["metadata"]["pretraining"]
    assert set(choices) == {"model.init", "model.image_head_norm", "model.missing_targets",
                            "optim.decay_grn_and_mask_token", "train.precision"}


def test_the_reference_choices_are_on_the_card(tmp_path):
    card, _ = _card(tmp_path, "bf16", "model.init=reference", "model.image_head_norm=pooled",
                    "model.missing_targets=zero", "optim.decay_grn_and_mask_token=true",
                    "train.precision=bf16")
    assert "- `model.init` = reference: MMEarth-train's FCMAE init (std 1.0" in card
    assert "- `model.image_head_norm` = pooled: global average pool, then" in card
    assert "regressed to z = 0, as MMEarth-train's nan_to_num does" in card
    assert "- `optim.decay_grn_and_mask_token` = true: GRN gamma/beta and the mask token " \
           "decayed, as in the reference" in card
    assert "- `train.precision` = bf16: trained in bf16 (the paper: fp32)" in card
