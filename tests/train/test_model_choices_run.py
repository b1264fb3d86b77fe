"""The model choices through a real run: the release's card records them, and resuming the
run under the other image-head layout stops with one line that says how to resume it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpmae.train.launch import RunFailedError, pretrain

pytestmark = pytest.mark.ray

REFERENCE = ["model.init=reference", "model.image_head_norm=pooled", "model.missing_targets=zero",
             "optim.decay_grn_and_mask_token=true", "scaling.num_workers=1", "train.max_steps=2",
             "train.figure_every=0"]


def test_a_run_records_its_choices_and_refuses_the_other_head_layout(ray_local, tiny_config):
    first = pretrain(tiny_config(*REFERENCE), progress=lambda _: None)
    card = (Path(first.run_dir) / "encoder" / "README.md").read_text()
    assert "- `model.init` = reference: MMEarth-train's FCMAE init" in card
    assert "- `model.image_head_norm` = pooled:" in card
    assert "- `model.missing_targets` = zero:" in card
    assert "- `optim.decay_grn_and_mask_token` = true:" in card
    assert "- `train.precision` = auto: trained in fp32" in card

    other_layout = [*REFERENCE, "model.image_head_norm=cells", "train.max_steps=4"]
    with pytest.raises(RunFailedError) as error:
        pretrain(tiny_config(*other_layout), progress=lambda _: None)
    first_line = str(error.value).splitlines()[0]
    assert first_line.startswith("training failed: the checkpoint of run t at step 2 holds "
                                 "weights of another model layout")
    assert "resume it with --set model.image_head_norm=pooled" in first_line
