"""``random:SIZE[:SEED]``: the random-init baseline, reproducible per seed."""

import pytest
import torch

from mpmae.config import ConfigError
from mpmae.evaluate.command.encoders import open_encoder


def _weights(spec: str) -> torch.Tensor:
    return torch.cat([p.flatten() for p in open_encoder(spec).module.parameters()])


def test_the_same_spec_gives_the_same_weights_and_seeds_differ():
    assert torch.equal(_weights("random:atto"), _weights("random:atto:0"))
    assert torch.equal(_weights("random:atto:3"), _weights("random:atto:3"))
    assert not torch.equal(_weights("random:atto:0"), _weights("random:atto:1"))


@pytest.mark.parametrize("spec, named", [("random:atto:x", "random:atto:1"),
                                         ("random:huge:1", "random:atto")])
def test_a_bad_spec_says_what_to_write(spec, named):
    with pytest.raises(ConfigError, match=named):
        open_encoder(spec)
