import pytest
import torch

from mpmae.evaluate.protocols.metrics import (
    accuracy_counts,
    f1_macro_counts,
    f1_micro_counts,
    iou_counts,
    score,
)


def test_accuracy_and_its_interval_bracket_the_value():
    target = torch.arange(200) % 4
    logits = torch.nn.functional.one_hot(target, 4).float()
    logits[:50] = torch.nn.functional.one_hot((target[:50] + 1) % 4, 4).float()  # 50 wrong
    s = score("accuracy", accuracy_counts(logits, target), seed=1)
    assert s.value == pytest.approx(0.75)
    assert s.ci95[0] < 0.75 < s.ci95[1] and s.ci95[1] - s.ci95[0] < 0.2


def test_a_perfect_prediction_has_a_point_interval():
    target = torch.tensor([0, 1, 2, 1])
    s = score("accuracy", accuracy_counts(torch.eye(3)[target], target))
    assert s.value == 1.0 and s.ci95 == (1.0, 1.0)


def test_micro_f1_counts_every_label_decision():
    target = torch.tensor([[1, 0, 1], [0, 1, 0]])
    logits = torch.tensor([[2.0, 1.0, -1.0], [-1.0, 3.0, -2.0]])  # tp 2, fp 1, fn 1
    assert score("f1_micro", f1_micro_counts(logits, target)).value == pytest.approx(4 / 6)


def test_miou_is_the_mean_over_classes_that_occur():
    target = torch.tensor([[[0, 0], [1, 1]]])
    predicted = torch.tensor([[[0, 1], [1, 1]]])
    logits = torch.nn.functional.one_hot(predicted, 3).permute(0, 3, 1, 2).float()
    # class 0: 1/2, class 1: 2/3, class 2 absent from both: not counted
    s = score("miou", iou_counts(logits, target, 3))
    assert s.value == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_macro_f1_averages_every_label_as_the_leaderboard_does():
    """GEO-Bench-2's Multilabel_F1_Score: per label 2tp / (2tp + fp + fn), a label neither
    predicted nor present scoring 0, then the mean over all labels (micro F1 pools the
    decisions instead)."""
    target = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 0, 0]])
    logits = torch.tensor([[1.0, -1.0, 1.0, -1.0], [1.0, -1.0, -1.0, -1.0],
                           [-1.0, 1.0, -1.0, -1.0]])
    # label 0: tp 2 → 1; label 1: tp 1, fn 1 → 2/3; label 2: fp 1 → 0; label 3: nothing → 0
    macro = score("f1_macro", f1_macro_counts(logits, target))
    assert macro.value == pytest.approx((1 + 2 / 3 + 0 + 0) / 4)
    # the same decisions pooled: tp 3, fp 1, fn 1
    assert score("f1_micro", f1_micro_counts(logits, target)).value == pytest.approx(6 / 8)
    assert macro.ci95[0] <= macro.value <= macro.ci95[1]
