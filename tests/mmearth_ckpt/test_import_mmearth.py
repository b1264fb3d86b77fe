"""``mpmae import-mmearth``: an authors' checkpoint in their exact names and layouts becomes
a release whose encoder computes what their network computes; bad files fail clearly."""

from __future__ import annotations

import json
import os

import pytest
import torch
from reference_fcmae import (
    ReferenceConvNeXtV2,
    authors_checkpoint,
    authors_remap_conv,
    features,
    minkowski_conv,
    randomise,
)

import mpmae
from mpmae.cli import main
from mpmae.evaluate.command.encoders import open_encoder
from mpmae.mmearth_ckpt.config import ImportConfig
from mpmae.mmearth_ckpt.errors import CheckpointError
from mpmae.mmearth_ckpt.importer import import_mmearth
from mpmae.modalities import S2_BANDS, S2_INPUT_BANDS

ATTO = ((2, 2, 6, 2), (40, 80, 160, 320))
ALL_MOD = "pt-all_mod_atto_1M_64_uncertainty_56-8"


def reference(in_chans=12, patch=8, orig_stem=False, depths=ATTO[0], seed=0):
    model = ReferenceConvNeXtV2(depths, ATTO[1], in_chans, patch, orig_stem)
    return randomise(model, seed).eval()


def write_checkpoint(folder, model, name=ALL_MOD):
    path = folder / name / "checkpoint-199.pth"
    path.parent.mkdir(parents=True)
    torch.save(authors_checkpoint(model), path)
    return path


def test_the_test_layout_is_the_one_the_authors_remap_reads():
    weight = torch.randn(5, 3, 3, 3)  # asymmetric: a swapped h/w would show
    assert minkowski_conv(weight).shape == (9, 3, 5)
    assert torch.equal(authors_remap_conv(minkowski_conv(weight)), weight)


@pytest.mark.parametrize(("name", "in_chans", "patch", "orig_stem", "size"), [
    (ALL_MOD, 12, 8, False, 16),
    ("pt-rgb_atto_1M_128_uncertainty_112-16", 3, 16, False, 32),
    ("pt-S2_atto_1M_64_unweighted_56_8", 12, 8, True, 16),  # use_orig_stem: our convnext stem
])
def test_imported_encoder_computes_what_the_reference_computes(
        tmp_path, name, in_chans, patch, orig_stem, size):
    model = reference(in_chans, patch, orig_stem)
    dest = tmp_path / "release"
    assert main(["import-mmearth", str(write_checkpoint(tmp_path, model, name)),
                 str(dest)]) == 0

    encoder = mpmae.load_encoder(dest)
    config = encoder.release_config
    assert (config["size"], config["patch_size"], config["in_chans"]) == ("atto", patch, in_chans)
    assert config["stem"] == ("convnext" if orig_stem else "mmearth")
    x = torch.randn(2, in_chans, size, size)
    ref_maps, ref_embedding = features(model, x)
    with torch.no_grad():
        ours = encoder.forward_features(x)
        embedding = encoder.embed(x)
    for theirs, mine in zip(ref_maps, ours, strict=True):
        assert theirs.shape == mine.shape
        assert (theirs - mine).abs().max() <= 1e-5 * theirs.abs().max()
    assert torch.allclose(embedding, ref_embedding, rtol=0, atol=1e-4)
    source = config["metadata"]["source"]
    assert source["name"] == name and source["file"] == "checkpoint-199.pth"
    assert len(source["sha256"]) == 64


def test_release_describes_its_origin_bands_and_behaviour(tmp_path):
    dest = import_mmearth(write_checkpoint(tmp_path, reference()), tmp_path / "out",
                          progress=lambda _: None)
    config = json.loads((dest / "config.json").read_text())
    assert config["input_bands"] == list(S2_INPUT_BANDS)
    assert config["input_bands"].index("B8A") < config["input_bands"].index("B8")
    source = config["metadata"]["source"]
    assert (source["pretext"], source["dataset"], source["loss_weighting"],
            source["image_size"], source["patch_size"]) == ("all", "MMEarth64", "uncertainty",
                                                             56, 8)
    assert "missing" in config["normalisation"] and "l1c" not in config["normalisation"]
    card = (dest / "README.md").read_text()
    assert ALL_MOD in card and source["sha256"] in card
    assert "unpadded (56 px → 54)" in card and "eps 1e-6" in card and "1e-4" in card
    opened = open_encoder(str(dest))  # what mpmae evaluate DEST does
    assert opened.input_bands == S2_INPUT_BANDS and opened.normalisation == config[
        "normalisation"]


def test_rgb_checkpoint_keeps_the_authors_bgr_order(tmp_path):
    path = write_checkpoint(tmp_path, reference(3, 16), "pt-rgb_atto_1M_64_uncertainty_56-8")
    with pytest.raises(CheckpointError, match="says atto, patch 8, rgb but the weights are "
                                              "atto, patch 16, 3 input channels"):
        import_mmearth(path, tmp_path / "a", progress=lambda _: None)
    dest = import_mmearth(path, tmp_path / "b", ImportConfig(name="anything"),
                          progress=lambda _: None)
    assert mpmae.load_encoder(dest).release_config["input_bands"] == ["B2", "B3", "B4"]


def test_stats_file_becomes_the_normalisation(tmp_path):
    stats = {f"sentinel2_{level}": {"mean": [100.0 * i + off for i in range(13)],
                                    "std": [10.0 + i for i in range(13)]}
             for level, off in (("l1c", 1), ("l2a", 2))}
    file = tmp_path / "data_1M_64_band_stats.json"
    file.write_text(json.dumps(stats))
    dest = import_mmearth(write_checkpoint(tmp_path, reference()), tmp_path / "out",
                          ImportConfig(stats=str(file)), progress=lambda _: None)
    norm = json.loads((dest / "config.json").read_text())["normalisation"]
    index = [S2_BANDS.index(b) for b in S2_INPUT_BANDS]  # B10 (index 10) left out
    assert norm["l1c"]["mean"] == [100.0 * i + 1 for i in index]
    assert norm["l2a"]["std"] == [10.0 + i for i in index]
    assert norm["from"] == file.name

    stats["sentinel2_l1c"]["std"][0] = 0
    file.write_text(json.dumps(stats))
    with pytest.raises(CheckpointError, match=r"std of .* above 0"):
        import_mmearth(tmp_path / ALL_MOD / "checkpoint-199.pth", tmp_path / "again",
                       ImportConfig(stats=str(file)), progress=lambda _: None)


def test_a_pickle_that_would_run_code_is_refused_unrun(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "evil.pth"
    torch.save({"model": {"encoder.x": torch.zeros(1)}, "args": Payload()}, path)
    with pytest.raises(CheckpointError, match=r"could run code .*posix.system"):
        import_mmearth(path, tmp_path / "out", progress=lambda _: None)
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_another_architecture_is_refused(tmp_path):
    timm_like = tmp_path / "convnextv2.pth"
    torch.save({"stem.0.weight": torch.zeros(40, 3, 4, 4), "head.fc.weight": torch.zeros(2, 3)},
               timm_like)
    with pytest.raises(CheckpointError, match=r"no 'encoder\.\*' weights"):
        import_mmearth(timm_like, tmp_path / "a", progress=lambda _: None)
    deeper = write_checkpoint(tmp_path, reference(depths=(2, 2, 7, 2)), "deeper")
    with pytest.raises(CheckpointError, match=r"depths \(2, 2, 7, 2\).*none of mpmae's sizes"):
        import_mmearth(deeper, tmp_path / "b", progress=lambda _: None)


@pytest.mark.parametrize(("change", "message"), [
    (lambda s: s.pop("encoder.stages.2.3.grn.gamma"), "lacks 1 encoder weight.*grn.gamma"),
    (lambda s: s.update({"encoder.stages.0.0.extra.weight": torch.zeros(3)}),
     "1 encoder weight.*fit no layer.*extra"),
    (lambda s: s.update({"encoder.stages.1.0.dwconv.kernel": torch.zeros(25, 80)}),
     r"dwconv.kernel' has shape \(25, 80\)"),
])
def test_a_wrong_key_set_is_refused(tmp_path, change, message):
    ckpt = authors_checkpoint(reference())
    change(ckpt["model"])
    path = tmp_path / "checkpoint.pth"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=message):
        import_mmearth(path, tmp_path / "out", progress=lambda _: None)


def test_bad_flags_and_destinations(tmp_path, capsys):
    path = write_checkpoint(tmp_path, reference())
    with pytest.raises(CheckpointError, match="12 input channels but 3 bands"):
        import_mmearth(path, tmp_path / "a", ImportConfig(bands="B2,B3,B4"),
                       progress=lambda _: None)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    assert main(["import-mmearth", str(path), str(busy)]) == 2
    assert "not empty: pick another DEST or pass --overwrite" in capsys.readouterr().err
    assert main(["import-mmearth", str(path), str(busy), "--overwrite"]) == 0
    assert sorted(p.name for p in busy.iterdir()) == ["README.md", "config.json",
                                                      "model.safetensors"]
    assert main(["import-mmearth", str(tmp_path / "nope.pth"), str(tmp_path / "c")]) == 2
    assert "nope.pth not found" in capsys.readouterr().err
