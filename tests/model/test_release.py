"""The encoder release folder: safetensors + config.json + model card, loadable with torch alone."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import mpmae
from mpmae.modalities import S2_INPUT_BANDS
from mpmae.model import build_encoder, save_encoder

METADATA = {
    "input_bands": list(S2_INPUT_BANDS),
    "normalisation": {"mean": np.full(12, 1000.0), "std": torch.full((12,), 500.0)},
    "dataset": "synthetic",
}


def test_round_trip_keeps_weights_and_describes_the_inputs(tmp_path, randomise):
    encoder = randomise(build_encoder("atto", patch_size=16, stem="convnext"))
    folder = save_encoder(encoder, tmp_path / "release", metadata=METADATA)
    assert {p.name for p in folder.iterdir()} == {"model.safetensors", "config.json", "README.md"}
    config = json.loads((folder / "config.json").read_text())
    assert config["size"] == "atto" and config["stem"] == "convnext" and config["patch_size"] == 16
    assert config["in_chans"] == 12 and config["input_bands"] == list(S2_INPUT_BANDS)
    assert config["normalisation"] == {"mean": [1000.0] * 12, "std": [500.0] * 12}
    assert config["metadata"] == {"dataset": "synthetic"} and config["format_version"] == 1
    assert set(load_file(str(folder / "model.safetensors"))) == set(encoder.state_dict())

    loaded = mpmae.load_encoder(folder)
    assert not loaded.training and loaded.release_config["input_bands"] == list(S2_INPUT_BANDS)
    x = torch.randn(2, 12, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.embed(x), encoder.eval().embed(x))


def test_metadata_is_checked(tmp_path):
    encoder = build_encoder("atto")
    with pytest.raises(ValueError, match="normalisation"):
        save_encoder(encoder, tmp_path, metadata={"input_bands": list(S2_INPUT_BANDS)})
    with pytest.raises(ValueError, match="3 input_bands"):
        save_encoder(encoder, tmp_path, metadata={**METADATA, "input_bands": ["B4", "B3", "B2"]})


def test_a_given_model_card_replaces_the_generated_one(tmp_path):
    folder = save_encoder(
        build_encoder("atto"), tmp_path, metadata={**METADATA, "model_card": "# mine\n"}
    )
    assert (folder / "README.md").read_text() == "# mine\n"
    assert "model_card" not in json.loads((folder / "config.json").read_text())["metadata"]


def test_not_a_release_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="release folder"):
        mpmae.load_encoder(tmp_path)


def test_import_is_light_and_loading_needs_neither_ray_nor_mlflow(tmp_path):
    save_encoder(build_encoder("atto"), tmp_path, metadata=METADATA)
    code = (
        "import sys, mpmae\n"
        "assert 'torch' not in sys.modules\n"
        f"mpmae.load_encoder({str(tmp_path)!r})\n"
        "assert not {'ray', 'mlflow'} & set(sys.modules), 'ray/mlflow imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
