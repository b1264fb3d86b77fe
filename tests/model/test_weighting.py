import math

import pytest
import torch

from mpmae.model.weighting import UncertaintyWeighting, UnweightedSum, build_weighting


def test_uncertainty_weighting_total_and_gradients():
    weighting = UncertaintyWeighting(("a", "b", "c"))
    with torch.no_grad():
        weighting.log_vars["b"].fill_(math.log(2.0))
    losses = {"a": torch.tensor(2.0), "b": torch.tensor(4.0), "c": torch.tensor(0.0)}
    counts = {"a": torch.tensor(5), "b": torch.tensor(5), "c": torch.tensor(0)}
    total, weights = weighting(losses, counts)
    # a: 1·2 + 0; b: ½·4 + log 2; c has no valid target and is left out.
    assert total.item() == pytest.approx(2 + 2 + math.log(2.0))
    assert weights["b"].item() == pytest.approx(0.5)
    total.backward()
    grads = {t: p.grad.item() for t, p in weighting.log_vars.items()}
    assert grads == pytest.approx({"a": -2 + 1, "b": -2 + 1, "c": 0.0})  # d/ds = −e^{−s}L + 1


def test_unweighted_sum():
    total, weights = UnweightedSum()({"a": torch.tensor(1.5), "b": torch.tensor(2.0)}, {})
    assert total.item() == 3.5 and all(w.item() == 1 for w in weights.values())


def test_unknown_weighting_is_refused():
    with pytest.raises(ValueError, match="uncertainty"):
        build_weighting("gradnorm", ("a",))
