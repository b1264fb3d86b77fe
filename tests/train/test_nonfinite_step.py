"""A non-finite loss or gradient updates nothing, is counted, and past the limit stops."""

from __future__ import annotations

import pytest
import torch

from mpmae.train.loop import LoopState, NonFiniteError, _optimizer_step


def _setup():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    return model, torch.optim.AdamW(model.parameters(), lr=0.1)


def _backward(model, poison: float | None = None) -> torch.Tensor:
    loss = model(torch.ones(2, 3)).sum()
    if poison is not None:
        loss = loss * poison
    loss.backward()
    return torch.isfinite(loss.detach())


def test_a_finite_step_updates_and_records_the_gradient_norm():
    model, optimizer = _setup()
    before = model.weight.detach().clone()
    state = LoopState()
    _optimizer_step(model, optimizer, state, _backward(model), max_nonfinite=0)
    assert not torch.equal(model.weight, before)
    assert state.nonfinite == 0 and state.grad_norm > 0
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
def test_a_non_finite_step_changes_no_weight_and_no_optimizer_state(poison):
    model, optimizer = _setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = LoopState()
    _optimizer_step(model, optimizer, state, _backward(model, poison), max_nonfinite=3)
    assert state.nonfinite == 1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert optimizer.state_dict()["state"] == {}  # AdamW's moments never saw the NaN
    assert all(p.grad is None for p in model.parameters())


def test_a_finite_loss_with_a_non_finite_gradient_is_skipped_too():
    model, optimizer = _setup()
    state = LoopState()
    loss = (model(torch.ones(2, 3)) * torch.tensor(float("inf")).clamp(max=1e38)).sum()
    loss.backward()
    model.weight.grad[0, 0] = float("nan")
    _optimizer_step(model, optimizer, state, torch.isfinite(loss.detach()), max_nonfinite=3)
    assert state.nonfinite == 1


def test_past_the_limit_the_run_stops_with_advice():
    model, optimizer = _setup()
    state = LoopState()
    _optimizer_step(model, optimizer, state, _backward(model, float("nan")), max_nonfinite=1)
    with pytest.raises(NonFiniteError, match=r"2 optimizer steps.*max_nonfinite_steps=1.*re-run"):
        _optimizer_step(model, optimizer, state, _backward(model, float("nan")), max_nonfinite=1)
