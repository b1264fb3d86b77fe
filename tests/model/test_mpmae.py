"""The assembled MP-MAE: outputs, every pretext set, missing targets, no leak, optimiser groups."""

import copy

import pytest
import torch

from mpmae.modalities import MODALITIES, PRETEXT_SETS
from mpmae.model import DenseMaskedReference, build_mpmae
from mpmae.model.masking import random_patch_mask

SMALL = {"img_size": 16, "decoder_dim": 32}  # a 2×2 patch grid and a narrow decoder


@pytest.mark.parametrize("pretext", list(PRETEXT_SETS))
def test_every_pretext_set_backpropagates_to_every_parameter(pretext, make_batch):
    model = build_mpmae(pretext=pretext, **SMALL)
    batch = make_batch(model.pretext, 2, 16)
    out = model(batch, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out.loss) and set(out.task_losses) == set(model.pretext.tasks)
    out.loss.backward()
    for name, p in model.named_parameters():
        if p.requires_grad:  # all but the embedding norm, which the MAE does not reach
            assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_outputs_for_reconstruction_figures(make_batch):
    model = build_mpmae(pretext="all", **SMALL)
    out = model(make_batch(model.pretext, 3, 16), generator=torch.Generator().manual_seed(0))
    assert out.mask.shape == (3, 2, 2) and out.mask.dtype == torch.bool
    assert ((~out.mask).flatten(1).sum(1) == 1).all()  # int(4·0.4) = 1 kept
    for task in model.pretext.tasks:
        channels = model.pretext.output_channels(task)
        spatial = (16, 16) if MODALITIES[task].kind.is_pixel else ()
        assert out.predictions[task].shape == (3, channels, *spatial)
        assert out.task_weights[task].item() == 1.0  # exp(−0) at initialisation


def test_the_mask_is_reproducible_from_a_generator(make_batch):
    model = build_mpmae(pretext="S2", **SMALL)
    batch = make_batch(model.pretext, 4, 16)
    first = model(batch, generator=torch.Generator().manual_seed(7))
    second = model(batch, generator=torch.Generator().manual_seed(7))
    assert torch.equal(first.mask, second.mask) and torch.equal(first.loss, second.loss)


def test_missing_targets_never_give_nan(make_batch):
    model = build_mpmae(pretext="all", **SMALL)
    batch = make_batch(model.pretext, 2, 16)
    batch["sentinel1"] = torch.full_like(batch["sentinel1"], float("nan"))
    batch["era5"][0] = float("nan")
    batch["biome"] = torch.full_like(batch["biome"], -1)
    batch["esa_worldcover"] = torch.full_like(batch["esa_worldcover"], -1)
    out = model(batch, generator=torch.Generator().manual_seed(0))
    assert out.task_losses["sentinel1"].item() == 0.0 and out.task_losses["biome"].item() == 0.0
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert model.weighting.log_vars["sentinel1"].grad.item() == 0.0


@torch.no_grad()
def test_hidden_input_changes_no_prediction_only_the_loss(make_batch, randomise):
    model = randomise(build_mpmae(pretext="all", img_size=32, decoder_dim=32))
    batch = make_batch(model.pretext, 2, 32)
    mask = model.random_mask(2, torch.Generator().manual_seed(0))
    hidden_pixels = mask.visible(8)[..., 0] == 0
    changed = dict(batch)
    changed["image"] = torch.where(hidden_pixels[:, None], 50.0, batch["image"])
    changed["sentinel2"] = torch.where(hidden_pixels[:, None], 50.0, batch["sentinel2"])
    a, b = model(batch, mask=mask), model(changed, mask=mask)
    for task in model.pretext.tasks:
        assert torch.equal(a.predictions[task], b.predictions[task]), task
    assert a.task_losses["sentinel2"] != b.task_losses["sentinel2"]
    assert a.task_losses["aster"] == b.task_losses["aster"]


def test_dense_reference_model_gives_the_same_loss(make_batch, randomise):
    model = randomise(build_mpmae(pretext="all", img_size=32, decoder_dim=32))
    reference = copy.deepcopy(model)
    reference.encoder = DenseMaskedReference(reference.encoder)
    batch = make_batch(model.pretext, 2, 32)
    mask = random_patch_mask(2, (4, 4), 0.6, generator=torch.Generator().manual_seed(0))
    got, ref = model(batch, mask=mask), reference(batch, mask=mask)
    assert torch.allclose(got.loss, ref.loss, rtol=1e-5)


def test_per_task_decoders_are_an_option(make_batch):
    model = build_mpmae(pretext="pix", share_decoder=False, loss_weighting="unweighted", **SMALL)
    assert set(model.decoders) == set(model.pretext.tasks)
    out = model(make_batch(model.pretext, 2, 16))
    assert out.loss.item() == pytest.approx(sum(v.item() for v in out.task_losses.values()))


def test_explicit_task_list():
    model = build_mpmae(pretext=["sentinel2", "biome"], **SMALL)
    assert set(model.heads) == {"sentinel2", "biome"}


def test_param_groups_exempt_biases_norms_tokens_and_log_variances():
    model = build_mpmae(pretext="img", **SMALL)
    decay, no_decay = model.param_groups(0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    ids = {id(p) for p in no_decay["params"]}
    assert id(model.decoders["shared"].mask_token) in ids
    assert all(id(p) in ids for p in model.weighting.parameters())
    assert id(model.encoder.stages[0].blocks[0].mlp.grn.weight) in ids
    assert id(model.encoder.stem.conv.bias) in ids and id(model.encoder.stem.conv.weight) not in ids
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(decay["params"]) + len(no_decay["params"]) == len(trainable)


def test_bad_batches_are_refused_with_a_reason(make_batch):
    model = build_mpmae(pretext="img", **SMALL)
    batch = make_batch(model.pretext, 2, 16)
    del batch["biome"]
    with pytest.raises(KeyError, match="biome"):
        model(batch)
    with pytest.raises(ValueError, match=r"'image'.*expected"):
        model(make_batch(model.pretext, 2, 24))
    batch = make_batch(model.pretext, 2, 16)
    batch["era5"] = batch["era5"][:, :4]
    with pytest.raises(ValueError, match=r"'era5'.*expected"):
        model(batch)


def test_param_groups_can_decay_grn_and_the_mask_token_as_the_reference():
    model = build_mpmae(pretext="img", share_decoder=False, **SMALL)
    ours, _ = model.param_groups(0.05)
    reference, no_decay = model.param_groups(0.05, decay_grn_and_mask_token=True)
    added = {id(p) for p in reference["params"]} - {id(p) for p in ours["params"]}
    grn = [p for n, p in model.named_parameters() if ".grn." in n]
    tokens = [d.mask_token for d in model.decoders.values()]
    assert len(tokens) == 7 and added == {id(p) for p in grn + tokens}
    ids = {id(p) for p in no_decay["params"]}
    assert id(model.encoder.stem.conv.bias) in ids and id(model.cell_norm.weight) in ids
    assert all(id(p) in ids for p in model.weighting.parameters())
