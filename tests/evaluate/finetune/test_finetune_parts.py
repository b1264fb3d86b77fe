"""The fine-tune's parts without Ray: layer-wise lr decay, the U-Net's shapes and skips,
the cell store's result and key (its checkpoints are the training engine's store:
tests/train/engine/test_checkpoint_store.py)."""

from __future__ import annotations

import json

import pytest
import torch

from mpmae.evaluate.finetune.cell_store import CellStore, cell_key
from mpmae.evaluate.finetune.classifier import Classifier
from mpmae.evaluate.finetune.layer_decay import layer_id, param_groups
from mpmae.evaluate.finetune.unet import UNet
from mpmae.model import build_encoder
from mpmae.storage import resolve

ATTO = (2, 2, 6, 2)  # L = 12: blocks are layers 1..12, the head 13


@pytest.mark.parametrize("name, expected", [
    ("encoder.stem.conv.weight", 0),
    ("encoder.stages.0.blocks.0.conv_dw.weight", 1),
    ("encoder.stages.0.blocks.1.mlp.grn.weight", 2),
    ("encoder.stages.1.downsample.conv.weight", 3),
    ("encoder.stages.1.blocks.0.norm.weight", 3),
    ("encoder.stages.2.blocks.5.mlp.fc2.weight", 10),
    ("encoder.stages.3.blocks.1.mlp.fc1.bias", 12),
    ("encoder.norm.weight", 13),
    ("head.weight", 13),
    ("decoder.ups.0.conv.weight", 13),
])
def test_layer_ids_follow_the_blocks_by_depth(name, expected):
    assert layer_id(name, ATTO) == expected


def test_groups_decay_the_lr_by_depth_and_spare_norms_biases_and_grn():
    model = Classifier(build_encoder("atto"), 10)
    groups = param_groups(model, ATTO, weight_decay=0.3, decay=0.9)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    scale = {g["layer"]: g["lr_scale"] for g in groups}
    assert scale[13] == 1.0 and scale[0] == pytest.approx(0.9 ** 13)
    assert scale[12] == pytest.approx(0.9)
    names = {id(p): n for n, p in model.named_parameters()}
    for group in groups:
        for p in group["params"]:
            spared = p.ndim == 1 or names[id(p)].endswith(".bias")
            assert group["weight_decay"] == (0.0 if spared else 0.3), names[id(p)]
    grn = dict(model.named_parameters())["encoder.stages.0.blocks.0.mlp.grn.weight"]
    assert any(g["weight_decay"] == 0 and any(p is grn for p in g["params"]) for g in groups)


@pytest.mark.parametrize("patch, size", [(8, 16), (16, 32)])
def test_the_unet_gives_logits_at_the_input_size_and_uses_every_stage(patch, size):
    model = UNet(build_encoder("atto", in_chans=4, patch_size=patch), n_classes=3)
    x = torch.randn(2, 4, size, size)
    logits = model(x)
    assert logits.shape == (2, 3, size, size)
    logits.square().mean().backward()
    # the skips: every stage's last block gets a gradient through the decoder
    for stage in model.encoder.stages:
        assert stage.blocks[-1].mlp.fc2.weight.grad.abs().sum() > 0


def test_the_result_is_read_back_and_the_key_changes_with_the_recipe(tmp_path):
    store = CellStore(resolve(tmp_path))
    assert store.result() is None
    store.write_result({"value": 0.5})
    assert json.loads((tmp_path / "result.json").read_text()) == {"value": 0.5}
    assert store.result() == {"value": 0.5}
    base = cell_key("random:atto", "m-eurosat", "default", 0, {"blr": 2e-4})
    assert base[:3] == ("random-atto", "m-eurosat", "default")
    assert base != cell_key("random:atto", "m-eurosat", "default", 0, {"blr": 1e-3})
    assert base != cell_key("random:atto", "m-eurosat", "default", 1, {"blr": 2e-4})


def test_each_epoch_prints_one_progress_line():
    from types import SimpleNamespace

    from mpmae.evaluate.finetune.loop import _progress_line

    spec = SimpleNamespace(cell="/runs/evaluate/enc/synth-landcover/default/seed0-ab12")
    line = _progress_line(spec, {"epoch": 2, "train_loss": 0.51234, "valid": 0.4321,
                                 "encoder_frozen": True}, epochs=20)
    assert line == ("synth-landcover/default/seed0-ab12: epoch 3/20 · train loss 0.5123 · "
                    "valid 43.2 % · encoder frozen")
    assert "valid" not in _progress_line(spec, {"epoch": 0, "train_loss": 1.0, "valid": None,
                                                "encoder_frozen": False}, epochs=1)


def test_a_non_finite_fine_tuning_step_is_skipped_and_too_many_stop_the_cell():
    from types import SimpleNamespace

    from mpmae.evaluate.finetune.loop import _count_skipped, _step
    from mpmae.train.engine.finite_step import NonFiniteError

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    x, y = torch.ones(4, 3), torch.zeros(4, dtype=torch.long)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def poisoned(logits, target):
        return torch.nn.functional.cross_entropy(logits, target) * float("nan")

    assert _step(model, optimizer, x, y, poisoned, 2, torch.device("cpu")) is None
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert not optimizer.state  # AdamW's moments never saw the step
    loss = _step(model, optimizer, x, y, torch.nn.functional.cross_entropy, 2,
                 torch.device("cpu"))
    assert loss is not None and loss > 0
    assert not torch.equal(model.weight, before["weight"])

    spec = SimpleNamespace(cell="/w/enc/ds/default/seed0", shared=SimpleNamespace(
        max_nonfinite_steps=1))
    assert _count_skipped(0, spec, epoch=0) == 1
    with pytest.raises(NonFiniteError, match=r"2 fine-tuning steps had a non-finite .*"
                                             r"finetune\.max_nonfinite_steps=1"):
        _count_skipped(1, spec, epoch=3)


def test_a_resumed_epoch_skips_the_samples_its_preempted_session_trained_on():
    from mpmae.evaluate.finetune.samples import ResumableSampler

    sampler = ResumableSampler(range(10), num_replicas=2, rank=1, shuffle=True, seed=3)
    sampler.set_epoch(4)
    whole = list(sampler)
    sampler.skip = 2
    assert list(sampler) == whole[2:] and len(sampler) == len(whole) - 2
    sampler.set_epoch(5)
    sampler.skip = 0
    assert list(sampler) != whole  # each epoch its own order
