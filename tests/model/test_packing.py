import pytest
import torch
import torch.nn.functional as F

from mpmae.model.masking import random_patch_mask
from mpmae.model.packing import (
    PackedLayout,
    patch_conv,
    patch_depthwise_conv,
    patch_windows,
)


def _setup(r=4, channels=3, batch=2, grid=(3, 4), ratio=0.5, seed=0):
    mask = random_patch_mask(batch, grid, ratio, generator=torch.Generator().manual_seed(seed))
    dense = torch.randn(batch, grid[0] * r, grid[1] * r, channels)
    return mask, PackedLayout(mask), dense * mask.visible(r)


def test_gather_then_scatter_restores_visible_cells_and_zeroes_hidden():
    mask, layout, dense = _setup()
    tokens = layout.gather(dense, 4)
    assert tokens.shape == (2, mask.num_keep, 4, 4, 3)
    assert torch.equal(layout.scatter(tokens), dense)


def test_tokens_are_the_patch_blocks_in_keep_order():
    mask, layout, dense = _setup(r=2)
    tokens = layout.gather(dense, 2)
    b, k = 1, 2
    i, j = divmod(int(mask.keep[b, k]), mask.grid[1])
    assert torch.equal(tokens[b, k], dense[b, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2])


@pytest.mark.parametrize("halo", [0, 1])
def test_patch_windows_are_padded_crops(halo):
    mask = random_patch_mask(2, (2, 3), 0.5, generator=torch.Generator().manual_seed(0))
    x = torch.randn(2, 5, 8, 12)
    windows = patch_windows(x, mask, 4, halo).view(2, mask.num_keep, 5, 4 + 2 * halo, -1)
    padded = F.pad(x, (halo,) * 4)
    b, k = 1, 0
    i, j = divmod(int(mask.keep[b, k]), 3)
    expected = padded[b, :, 4 * i : 4 * i + 4 + 2 * halo, 4 * j : 4 * j + 4 + 2 * halo]
    assert torch.equal(windows[b, k], expected)


@pytest.mark.parametrize("f", [1, 2])
def test_patch_local_convs_equal_dense_strided_convs(f):
    _, layout, dense = _setup(r=4, channels=6)
    nchw = dense.permute(0, 3, 1, 2)
    tokens = layout.gather(dense, 4)
    weight, bias = torch.randn(5, 6, f, f), torch.randn(5)
    expected = F.conv2d(nchw, weight, bias, stride=f).permute(0, 2, 3, 1)
    got = patch_conv(tokens, weight, bias)
    assert torch.allclose(got, layout.gather(expected.contiguous(), 4 // f), atol=1e-5)
    dw_weight, dw_bias = torch.randn(6, 1, f, f), torch.randn(6)
    expected = F.conv2d(nchw, dw_weight, dw_bias, stride=f, groups=6).permute(0, 2, 3, 1)
    got = patch_depthwise_conv(tokens, dw_weight, dw_bias)
    assert torch.allclose(got, layout.gather(expected.contiguous(), 4 // f), atol=1e-5)
