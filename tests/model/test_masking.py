import pytest
import torch

from mpmae.model.choices import num_kept
from mpmae.model.masking import PatchMask, random_patch_mask


@pytest.mark.parametrize(
    ("patches", "ratio", "kept"), [(49, 0.6, 19), (49, 0.0, 49), (10, 0.9, 1), (10, 0.7, 3)]
)
def test_num_kept_follows_fcmae(patches, ratio, kept):
    assert num_kept(patches, ratio) == kept


@pytest.mark.parametrize("ratio", [-0.1, 1.0])
def test_num_kept_rejects_bad_ratio(ratio):
    with pytest.raises(ValueError, match="mask_ratio"):
        num_kept(49, ratio)


def test_random_mask_keeps_19_of_49_per_sample_in_raster_order():
    mask = random_patch_mask(16, (7, 7), 0.6, generator=torch.Generator().manual_seed(0))
    assert mask.hidden.shape == (16, 7, 7) and mask.hidden.dtype == torch.bool
    assert ((~mask.hidden).flatten(1).sum(1) == 19).all()
    assert mask.keep.shape == (16, 19) and (mask.keep.diff(dim=1) > 0).all()
    assert not mask.hidden.flatten(1).gather(1, mask.keep).any()
    assert len({tuple(row.tolist()) for row in mask.keep}) > 1  # one mask per sample


def test_random_mask_is_reproducible_from_a_generator():
    def draw(seed):
        return random_patch_mask(4, (7, 7), 0.6, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(draw(3).hidden, draw(3).hidden)
    assert not torch.equal(draw(3).hidden, draw(4).hidden)


def test_from_hidden_round_trips_and_checks_counts():
    mask = random_patch_mask(5, (3, 4), 0.5, generator=torch.Generator().manual_seed(1))
    again = PatchMask.from_hidden(mask.hidden)
    assert torch.equal(again.keep, mask.keep) and again.grid == (3, 4) and again.num_keep == 6
    uneven = mask.hidden.clone()
    uneven[0, 0, 0] = ~uneven[0, 0, 0]
    with pytest.raises(ValueError, match="same"):
        PatchMask.from_hidden(uneven)


def test_visible_upsamples_the_patch_grid():
    hidden = torch.tensor([[[True, False]]])
    vis = PatchMask.from_hidden(hidden).visible(2)
    assert vis.shape == (1, 2, 4, 1)
    assert vis[0, :, :, 0].tolist() == [[0, 0, 1, 1], [0, 0, 1, 1]]
