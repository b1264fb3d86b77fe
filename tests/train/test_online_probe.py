"""The linear probe: known answers on synthetic embeddings, and a tiny real encoder on the
synthetic world's downstream set."""

from __future__ import annotations

import pytest
import torch

from mpmae.data.format.manifest import read_manifest
from mpmae.modalities import S2_INPUT_BANDS
from mpmae.model import build_encoder
from mpmae.storage import resolve
from mpmae.train.online_probe import linear_probe_accuracy, load_probe_set, probe_encoder


def _blobs(n: int, classes: int, dim: int, spread: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g) * 5
    y = torch.arange(n) % classes
    return centres[y] + spread * torch.randn(n, dim, generator=g), y


def test_separable_classes_are_found():
    x, y = _blobs(600, 9, 32, spread=0.5, seed=0)
    assert linear_probe_accuracy(x[:400], y[:400], x[400:], y[400:], 9) > 0.98


def test_random_labels_score_near_chance():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1200, 32, generator=g)
    y = torch.randint(0, 4, (1200,), generator=g)
    accuracy = linear_probe_accuracy(x[:600], y[:600], x[600:], y[600:], 4)
    assert 0.15 < accuracy < 0.35


def test_probe_is_deterministic():
    x, y = _blobs(300, 3, 16, spread=4.0, seed=2)
    runs = {linear_probe_accuracy(x[:200], y[:200], x[200:], y[200:], 3) for _ in range(2)}
    assert len(runs) == 1


@pytest.fixture(scope="module")
def probe_set(small_world):
    stats = read_manifest(resolve(str(small_world))).stats
    return load_probe_set(str(small_world / "downstream"), stats, S2_INPUT_BANDS, img_size=8)


def test_probe_set_is_normalised_and_centre_cropped(probe_set):
    assert probe_set.train_x.shape[1:] == (len(S2_INPUT_BANDS), 8, 8)
    assert len(probe_set.train_x) == len(probe_set.train_y) > 0
    assert len(probe_set.test_x) > 0 and probe_set.num_classes == 9
    assert probe_set.train_x.abs().mean() < 5  # z-scores, not raw reflectances
    assert torch.isfinite(probe_set.train_x).all()


def test_tiny_real_encoder(probe_set):
    torch.manual_seed(0)
    encoder = build_encoder("atto", in_chans=len(S2_INPUT_BANDS), patch_size=8)
    encoder.train()
    first = probe_encoder(encoder, probe_set)
    assert 0.0 <= first <= 1.0
    assert encoder.training  # the probe restores the encoder's mode
    assert probe_encoder(encoder, probe_set) == first


def test_unlabelled_set_is_refused(small_world):
    stats = read_manifest(resolve(str(small_world))).stats
    with pytest.raises(ValueError, match="no labels"):
        load_probe_set(str(small_world), stats, S2_INPUT_BANDS, img_size=8)

