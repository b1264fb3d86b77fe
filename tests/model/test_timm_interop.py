"""With the original ConvNeXt stem the encoder is timm's ConvNeXt V2, weight for weight."""

import pytest
import timm
import torch

from mpmae.model import ENCODER_SIZES, build_encoder, timm_state_dict


@pytest.mark.parametrize("size", list(ENCODER_SIZES))
def test_weights_load_into_timm_and_features_agree(size, randomise):
    encoder = randomise(build_encoder(size, patch_size=32, stem="convnext")).eval()
    model = timm.create_model(f"convnextv2_{size}", in_chans=12, pretrained=False, num_classes=0)
    model.load_state_dict(timm_state_dict(encoder))  # strict: every key, every shape
    x = torch.randn(1, 12, 64, 64)
    with torch.no_grad():
        theirs, ours = model.forward_features(x), encoder.forward_features(x)[-1]
        scale = theirs.abs().max()
        assert (theirs - ours).abs().max() <= 1e-5 * scale
        assert torch.allclose(model(x), encoder.embed(x), atol=1e-5 * scale)


def test_patch_8_matches_timm_with_a_stride_1_stem(randomise):
    encoder = randomise(build_encoder("atto", patch_size=8, stem="convnext")).eval()
    model = timm.create_model("convnextv2_atto", in_chans=12, patch_size=1, num_classes=0)
    model.load_state_dict(timm_state_dict(encoder))
    x = torch.randn(2, 12, 16, 16)
    with torch.no_grad():
        theirs, ours = model.forward_features(x), encoder.forward_features(x)[-1]
        assert (theirs - ours).abs().max() <= 1e-5 * theirs.abs().max()


def test_the_mmearth_stem_has_no_timm_counterpart():
    with pytest.raises(ValueError, match="convnext"):
        timm_state_dict(build_encoder("atto"))
