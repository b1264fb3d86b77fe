"""``model.init``: which layers get MMEarth-train's std 1.0, measured on the built modules."""

import pytest
import torch

from mpmae.config import ConfigError
from mpmae.model import build_mpmae
from mpmae.model.init import reference_unit_std_layers

SMALL = {"img_size": 16, "decoder_dim": 32}
# std of a normal cut at ±2 std: the reference's timm trunc_normal_(std=1) draws this.
UNIT_TRUNCATED_STD = 0.8796


def _weight_stds(model) -> dict[str, float]:
    return {name: p.std().item() for name, p in model.named_parameters()
            if p.ndim > 1 and name.endswith("weight")}


def _reference_unit_names(model) -> set[str]:
    """The names MMEarth-train's FCMAE gives std 1.0, read off its module types."""
    names = set()
    for name, _ in model.named_parameters():
        dense_conv = (name.startswith("decoders.") and (".proj." in name or ".conv_dw." in name))
        minkowski = name.startswith("encoder.") and (
            ".conv_dw." in name or ".mlp.fc1." in name or ".mlp.fc2." in name)
        pixel_head = name.startswith("heads.") and name.endswith(".proj.weight")
        if name.endswith("weight") and (dense_conv or minkowski or pixel_head):
            names.add(name)
    return names


@pytest.mark.parametrize("config", [{}, {"share_decoder": False, "decoder_depth": 2},
                                    {"stem": "convnext"}])
def test_reference_gives_std_one_exactly_where_the_reference_does(config):
    torch.manual_seed(0)
    model = build_mpmae(pretext="all", init="reference", **SMALL, **config)
    stds = _weight_stds(model)
    unit = {name for name, std in stds.items() if std > 0.5}
    assert unit == _reference_unit_names(model)
    assert "encoder.stem.conv.weight" not in unit and "heads.biome.fc.weight" not in unit
    assert any(".downsample.conv." in n for n in stds) and not any(
        ".downsample.conv." in n for n in unit)
    for name in unit:
        assert stds[name] == pytest.approx(UNIT_TRUNCATED_STD, rel=0.35), name
    for name in set(stds) - unit:
        assert stds[name] < 0.03, name


def test_reference_draws_are_cut_at_two():
    model = build_mpmae(pretext="S2", init="reference", **SMALL)
    largest = max(layer.weight.abs().max().item() for layer in reference_unit_std_layers(model))
    assert 1.5 < largest <= 2.0


def test_convnext_is_std_0_02_everywhere_and_biases_start_at_zero():
    torch.manual_seed(0)
    model = build_mpmae(pretext="all", init="convnext", **SMALL)
    assert all(std < 0.03 for std in _weight_stds(model).values())
    big = [p for n, p in model.named_parameters() if n.endswith("proj.weight") and p.numel() > 5000]
    assert big and all(p.std().item() == pytest.approx(0.02, rel=0.1) for p in big)
    for layer in reference_unit_std_layers(build_mpmae(pretext="all", init="reference", **SMALL)):
        assert torch.count_nonzero(layer.bias) == 0


def test_an_unknown_init_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match=r"init: must be one of \['reference', 'convnext'\]"):
        build_mpmae(init="xavier")
