"""``model.image_head_norm``: MMEarth's one shared LayerNorm per cell before pooling, or
pool first and normalise per task."""

import pytest
import torch
import torch.nn.functional as F

from mpmae.model import build_mpmae

SMALL = {"img_size": 16, "decoder_dim": 32}


def _decoded_and_output(model, batch):
    """The decoded grid the heads read, and the model's output, from one forward."""
    seen = {}
    hook = model.decoders["shared"].register_forward_hook(lambda m, i, out: seen.update(x=out))
    out = model(batch, generator=torch.Generator().manual_seed(0))
    hook.remove()
    return seen["x"], out


def test_cells_normalises_every_cell_before_pooling(make_batch, randomise):
    torch.manual_seed(0)
    model = randomise(build_mpmae(pretext="img", **SMALL))
    decoded, out = _decoded_and_output(model, make_batch(model.pretext, 3, 16))
    norm = model.cell_norm
    cells_first = F.layer_norm(decoded, (32,), norm.weight, norm.bias, norm.eps).mean(dim=(1, 2))
    pooled_first = F.layer_norm(decoded.mean(dim=(1, 2)), (32,), norm.weight, norm.bias, norm.eps)
    for task in ("biome", "era5", "lat"):
        fc = model.heads[task].fc
        assert torch.allclose(out.predictions[task], fc(cells_first), atol=1e-5), task
        assert not torch.allclose(out.predictions[task], fc(pooled_first), atol=1e-3), task


def test_pooled_normalises_the_pooled_vector_per_task(make_batch, randomise):
    torch.manual_seed(0)
    model = randomise(build_mpmae(pretext="img", image_head_norm="pooled", **SMALL))
    decoded, out = _decoded_and_output(model, make_batch(model.pretext, 3, 16))
    for task in ("biome", "era5"):
        head = model.heads[task]
        assert torch.allclose(out.predictions[task], head.fc(head.norm(decoded.mean(dim=(1, 2)))),
                              atol=1e-5), task


def test_the_order_matters_on_a_hand_made_grid():
    """Two cells, one ten times the other's scale: LN per cell weighs them alike."""
    model = build_mpmae(pretext=["sentinel2", "lat"], **SMALL)
    with torch.no_grad():
        model.heads["lat"].fc.weight.zero_()
        model.heads["lat"].fc.weight[0, :2] = torch.tensor([1.0, -1.0])
    cell = torch.zeros(32)
    cell[0] = 1.0
    grid = torch.stack([cell, -10 * cell]).reshape(1, 1, 2, 32)
    cells = model.heads["lat"](model.cell_norm(grid))
    # each cell normalises to ±(x - mean)/std on its own, so the two cancel in the pool
    assert cells[0, 0].item() == pytest.approx(0.0, abs=1e-4)
    pooled = model.heads["lat"].fc(F.layer_norm(grid.mean(dim=(1, 2)), (32,), eps=1e-6))
    assert abs(pooled[0, 0].item()) > 1.0


def test_parameter_layouts():
    cells = build_mpmae(pretext="all", **SMALL)
    assert cells.cell_norm is not None and cells.heads["biome"].norm is None
    pooled = build_mpmae(pretext="all", image_head_norm="pooled", **SMALL)
    assert pooled.cell_norm is None and pooled.heads["biome"].norm is not None
    # no image task, no norm: DDP refuses parameters that get no gradient
    assert build_mpmae(pretext="pix", **SMALL).cell_norm is None


def test_one_norm_serves_every_image_task_with_per_task_decoders(make_batch):
    model = build_mpmae(pretext="img", share_decoder=False, **SMALL)
    out = model(make_batch(model.pretext, 2, 16), generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    assert model.cell_norm.weight.grad is not None
    outside_decoders = [m for name, m in model.named_modules() if not name.startswith("decoders")
                        and isinstance(m, torch.nn.LayerNorm) and m.normalized_shape == (32,)]
    assert outside_decoders == [model.cell_norm]
