"""auto is bf16 on a GPU and fp32 elsewhere; a chosen precision is kept; fp32 autocasts
nothing and bf16 runs the forward in bf16."""

from __future__ import annotations

import pytest
import torch

from mpmae.train.engine.precision import autocast, resolve_precision


@pytest.mark.parametrize("setting, device, expected", [
    ("auto", "cuda", "bf16"), ("auto", "cpu", "fp32"), ("fp32", "cuda", "fp32"),
    ("bf16", "cpu", "bf16"),
])
def test_the_precision_follows_the_setting_and_the_device(setting, device, expected):
    assert resolve_precision(setting, device) == expected


@pytest.mark.parametrize("precision, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_the_forward_runs_in_the_chosen_precision(precision, dtype):
    layer = torch.nn.Linear(4, 2)
    with autocast(torch.device("cpu"), precision):
        assert layer(torch.randn(3, 4)).dtype == dtype
