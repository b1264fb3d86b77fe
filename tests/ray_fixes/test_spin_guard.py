import time

import pytest

from mpmae.data.stream.tile_dataset import TileDataset
from mpmae.modalities import resolve_pretext
from mpmae.ray_fixes.stream_callbacks import MIN_BACKOFF_S, SpinGuard


def test_steps_that_do_not_wait_are_slowed_down_more_and_more():
    guard = SpinGuard()
    start = time.perf_counter()
    for _ in range(3):  # each call comes right after the last: a spinning loop
        guard.on_execution_step(None)
    # 5 + 10 + 20 ms of backoff at least
    assert time.perf_counter() - start >= 7 * MIN_BACKOFF_S


def test_a_step_that_waited_resets_the_backoff():
    guard = SpinGuard()
    guard.on_execution_step(None)
    guard.on_execution_step(None)
    time.sleep(0.01)  # as if ray.wait had blocked for a running task
    guard.on_execution_step(None)
    assert guard._backoff == MIN_BACKOFF_S


@pytest.mark.ray
def test_the_training_stream_carries_the_guard(ray_local, small_world):
    data = TileDataset.open(str(small_world)).read("train", resolve_pretext("S2"))
    assert SpinGuard in data.context.custom_execution_callback_classes
    assert sum(b["sentinel2"].shape[0] for b in data.iter_batches(batch_size=64)) > 0
