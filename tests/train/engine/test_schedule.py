"""The one lr schedule gives, to float tolerance, the learning rates that each of its three
users produced with its own schedule before they shared it (numbers recorded from
pretraining's LambdaLR over ``lr_factor``, fine-tuning's ``_Schedule`` and the linear head's
``CosineAnnealingLR``), and the training loops follow it step by step."""

from __future__ import annotations

import pytest
import torch

from mpmae.evaluate.config import LinearConfig
from mpmae.train.engine.schedule import WarmupCosine

# (peak, floor, warm-up, total) → the lr of optimizer steps 0, 1, 2, ...
RECORDED = [
    # pretraining: 3 warm-up steps of 10, then cosine to min_lr; min_lr past the end
    ((1.5e-4, 1e-6, 3, 10), [
        4.9999999999999996e-05, 9.999999999999999e-05, 0.00015, 0.00015,
        0.0001426221806587302, 0.00012194999023847564, 9.207780957974541e-05,
        5.892219042025457e-05, 2.905000976152435e-05, 8.377819341269781e-06, 1e-06, 1e-06]),
    # pretraining without warm-up, min_lr 0
    ((4e-3, 0.0, 0, 5), [0.004, 0.003618033988749895, 0.002618033988749895,
                         0.0013819660112501053, 0.0003819660112501053, 0.0]),
    # fine-tuning: cosine over epochs × batches
    ((5e-4, 1e-6, 0, 8), [
        0.0005, 0.00048100794336156604, 0.0004269231419060436, 0.00034597951637508993,
        0.0002505, 0.0001550204836249101, 7.40768580939564e-05, 1.9992056638433958e-05]),
    # the linear head
    ((2e-3, 1e-5, 0, 6), [0.002, 0.0018666952767655166, 0.0015025, 0.0010049999999999998,
                          0.0005075000000000001, 0.00014330472323448347]),
    ((2.5e-3, 0.0, 0, 9), [
        0.0025, 0.0024246157759823857, 0.0022075555538987224, 0.0018750000000000001,
        0.0014670602220836634, 0.0010329397779163373, 0.0006250000000000004,
        0.0002924444461012777, 7.538422401761463e-05]),
]


@pytest.mark.parametrize("setting, recorded", RECORDED)
def test_the_schedule_gives_the_learning_rates_recorded_before_it_was_shared(setting,
                                                                             recorded):
    schedule = WarmupCosine(*setting)
    assert [schedule.lr(s) for s in range(len(recorded))] == pytest.approx(recorded, rel=1e-12)


def test_each_group_trains_at_its_layer_decay_scale():
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(3)]
    optimizer = torch.optim.AdamW([{"params": [params[0]], "lr_scale": 1.0},
                                   {"params": [params[1]], "lr_scale": 0.5},
                                   {"params": [params[2]]}], lr=1.0)
    WarmupCosine(5e-4, 1e-6, 0, 8).apply(optimizer, 1)
    lrs = [g["lr"] for g in optimizer.param_groups]
    # fine-tuning's recorded lrs at step 1, its lr_scale 0.5 group included
    assert lrs == pytest.approx([0.00048100794336156604, 0.00024050397168078302,
                                 0.00048100794336156604], rel=1e-12)


def test_the_linear_head_trains_at_the_schedules_rate_each_step(monkeypatch):
    from mpmae.evaluate.protocols import linear_head

    seen = []
    step = torch.optim.AdamW.step

    def recording(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", recording)
    x, y = torch.randn(10, 3), torch.randint(0, 2, (10,))
    cfg = LinearConfig(epochs=3, batch_size=4, blr=0.32, min_lr=1e-5)
    linear_head.train_linear_head(x, y, 2, cfg, seed=0)
    expected = WarmupCosine(0.32 * 4 / 256, 1e-5, 0, 9)  # 3 epochs of 3 batches
    assert seen == pytest.approx([expected.lr(s) for s in range(9)], rel=1e-12)
