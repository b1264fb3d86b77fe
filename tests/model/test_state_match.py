"""Loading a training checkpoint's weights: another layout is one clear error, not a
list of tensor names from deep inside torch."""

import pytest
import torch

from mpmae.model import build_mpmae
from mpmae.model.state_match import ModelStateError, load_model_state, load_optimizer_state

SMALL = {"img_size": 16, "decoder_dim": 32}


def test_the_same_layout_loads():
    source = build_mpmae(pretext="img", **SMALL)
    target = build_mpmae(pretext="img", **SMALL)
    load_model_state(target, source.state_dict(), "ckpt")
    assert torch.equal(target.cell_norm.weight, source.cell_norm.weight)
    assert torch.equal(target.heads["biome"].fc.weight, source.heads["biome"].fc.weight)


@pytest.mark.parametrize(("written", "now"), [("pooled", "cells"), ("cells", "pooled")])
def test_the_other_image_head_layout_names_the_setting_that_reads_it(written, now):
    old = build_mpmae(pretext="all", image_head_norm=written, **SMALL).state_dict()
    model = build_mpmae(pretext="all", image_head_norm=now, **SMALL)
    with pytest.raises(ModelStateError) as error:
        load_model_state(model, old, "the checkpoint of run t at step 4")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("the checkpoint of run t at step 4 holds weights of another ")
    assert f"--set model.image_head_norm={written}" in message


def test_another_size_is_told_to_resume_with_its_own_settings():
    old = build_mpmae(pretext="S2", size="femto", **SMALL).state_dict()
    with pytest.raises(ModelStateError, match=r"other shapes for .*the checkpoint's 'config'"):
        load_model_state(build_mpmae(pretext="S2", **SMALL), old, "ckpt")


def test_optimizer_groups_of_another_decay_rule_are_one_clear_error():
    model = build_mpmae(pretext="S2", **SMALL)
    saved = torch.optim.AdamW(model.param_groups(0.05, decay_grn_and_mask_token=True)).state_dict()
    optimizer = torch.optim.AdamW(model.param_groups(0.05))
    with pytest.raises(ModelStateError, match=r"optim\.decay_grn_and_mask_token"):
        load_optimizer_state(optimizer, saved, "ckpt")
    load_optimizer_state(optimizer, optimizer.state_dict(), "ckpt")
