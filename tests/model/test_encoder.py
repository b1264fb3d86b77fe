"""The sparse-masked encoder against the dense-masked reference and a plain ConvNeXt V2."""

import pytest
import torch

from mpmae.model import ENCODER_SIZES, DenseMaskedReference, build_encoder, random_patch_mask

SIZES = list(ENCODER_SIZES)
# (size, stem, patch, image side, mask ratio): every size (on a small 2×2 patch grid), both
# stems, both presets' strides, and the MMEarth64 preset itself.
CASES = [(s, "mmearth", 8, 16, 0.5) for s in SIZES] + [
    ("atto", "convnext", 8, 32, 0.6),
    ("atto", "mmearth", 16, 64, 0.5),
    ("femto", "convnext", 16, 48, 0.3),
    ("atto", "mmearth", 8, 56, 0.6),
]


def _rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float((got - ref).abs().max() / ref.abs().max().clamp(min=1e-12))


def _forward_backward(run, encoder, x, weights):
    encoder.zero_grad()
    x = x.clone().requires_grad_()
    features = run(x)
    sum(((f * w).sum() for f, w in zip(features, weights, strict=True))).backward()
    grads = {n: p.grad.clone() for n, p in encoder.named_parameters() if p.grad is not None}
    return [f.detach() for f in features], x.grad, grads


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def exact_cuda():
    """fp32 on CUDA without TF32, which would round convolutions to ~1e-3."""
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.parametrize(("size", "stem", "patch", "side", "ratio"), CASES)
def test_sparse_equals_dense_masked_reference(size, stem, patch, side, ratio, device,
                                              randomise, exact_cuda):
    torch.manual_seed(0)
    encoder = randomise(build_encoder(size, patch_size=patch, stem=stem)).to(device)
    reference = DenseMaskedReference(encoder)
    x = torch.randn(2, 12, side, side, device=device)  # two samples = two different masks
    grid = (side // patch, side // patch)
    mask = random_patch_mask(2, grid, ratio, generator=torch.Generator().manual_seed(1),
                             device=device)
    shapes = [f.shape for f in encoder.forward_features(x[:1], mask.hidden[:1])]
    weights = [torch.randn(2, *s[1:], device=device) for s in shapes]

    got = _forward_backward(lambda v: encoder.forward_features(v, mask), encoder, x, weights)
    ref = _forward_backward(lambda v: reference.forward_features(v, mask), encoder, x, weights)

    for g, r in zip(got[0], ref[0], strict=True):
        assert _rel_err(g, r) <= 1e-5
    assert _rel_err(got[1], ref[1]) <= 1e-5
    for name, grad in ref[2].items():
        assert _rel_err(got[2][name], grad) <= 1e-5, name


@pytest.mark.parametrize("stem", ["mmearth", "convnext"])
@torch.no_grad()
def test_mask_ratio_zero_equals_plain_dense_convnext(stem, randomise):
    encoder = randomise(build_encoder("atto", stem=stem))
    x = torch.randn(2, 12, 32, 32)
    mask = random_patch_mask(2, (4, 4), 0.0)
    assert not mask.hidden.any()
    for sparse, dense in zip(
        encoder.forward_features(x, mask), encoder.forward_features(x), strict=True
    ):
        assert _rel_err(sparse, dense) <= 1e-5


@pytest.mark.parametrize("path", ["sparse", "dense_reference"])
@torch.no_grad()
def test_hidden_input_does_not_reach_visible_outputs(path, randomise):
    encoder = randomise(build_encoder("atto"))
    run = encoder if path == "sparse" else DenseMaskedReference(encoder)
    x = torch.randn(2, 12, 32, 32)
    mask = random_patch_mask(2, (4, 4), 0.6, generator=torch.Generator().manual_seed(0))
    pixels_hidden = mask.visible(8)[..., 0] == 0
    x2 = x.clone()
    x2.masked_scatter_(pixels_hidden[:, None].expand_as(x), torch.randn(x.shape) * 100)
    assert not torch.equal(x, x2)
    for a, b in zip(run.forward_features(x, mask), run.forward_features(x2, mask), strict=True):
        assert torch.equal(a, b)
        side = a.shape[-1] // 4
        assert (a * (1 - mask.visible(side)).permute(0, 3, 1, 2)).abs().max() == 0


def test_feature_shapes_embedding_and_non_square_inputs():
    encoder = build_encoder("atto", patch_size=16)
    x = torch.randn(2, 12, 32, 80)
    features = encoder.forward_features(x)
    assert [tuple(f.shape) for f in features] == [
        (2, 40, 16, 40),
        (2, 80, 8, 20),
        (2, 160, 4, 10),
        (2, 320, 2, 5),
    ]
    mask = random_patch_mask(2, (2, 5), 0.6)
    assert encoder.forward_masked(x, mask).shape == (2, 320, 2, 5)
    assert encoder.embed(x).shape == encoder.embed(x, mask).shape == (2, 320)
    assert torch.allclose(encoder(x), encoder.embed(x))


def test_bad_inputs_are_refused_with_a_reason():
    encoder = build_encoder("atto")
    with pytest.raises(ValueError, match="multiple of patch"):
        encoder.forward_features(torch.randn(1, 12, 30, 32), torch.zeros(1, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="grid"):
        encoder.forward_features(torch.randn(1, 12, 32, 32), torch.zeros(1, 3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="unknown encoder size"):
        build_encoder("huge")
    with pytest.raises(ValueError, match="multiple of 8"):
        build_encoder("atto", patch_size=12)


def test_drop_path_trains_and_eval_is_deterministic():
    encoder = build_encoder("atto", drop_path_rate=0.5)
    x, mask = torch.randn(4, 12, 16, 16), random_patch_mask(4, (2, 2), 0.5)
    encoder.train()
    encoder.embed(x, mask).sum().backward()
    assert encoder.stem.conv.weight.grad is not None
    encoder.eval()
    assert torch.equal(encoder.embed(x, mask), encoder.embed(x, mask))


def test_bf16_autocast_runs_the_sparse_path():
    encoder = build_encoder("atto")
    mask = random_patch_mask(2, (2, 2), 0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = encoder.forward_masked(torch.randn(2, 12, 16, 16), mask)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


@torch.no_grad()
def test_sparse_path_compiles_as_one_graph():
    encoder = build_encoder("atto")
    mask = random_patch_mask(2, (4, 4), 0.6)
    x = torch.randn(2, 12, 32, 32)
    # fullgraph: the sparse path must trace without a single graph break.
    compiled = torch.compile(encoder.forward_masked, backend="eager", fullgraph=True)
    assert _rel_err(compiled(x, mask), encoder.forward_masked(x, mask)) <= 1e-6
