import threading

import pytest

from mpmae.data.stream.epochs import EpochPrefetcher


class Epochs:
    """epoch → its batches (epoch, i); records which epochs were started."""

    def __init__(self, batches: int = 3) -> None:
        self.batches = batches
        self.started: list[int] = []

    def __call__(self, epoch: int):
        self.started.append(epoch)
        return [(epoch, i) for i in range(self.batches)]


def test_epochs_come_in_order_each_whole():
    with EpochPrefetcher(Epochs(3), first_epoch=4) as epochs:
        assert list(epochs.epoch(4)) == [(4, 0), (4, 1), (4, 2)]
        assert list(epochs.epoch(5)) == [(5, 0), (5, 1), (5, 2)]


def test_next_epoch_starts_before_the_current_one_is_consumed():
    source = Epochs(2)
    started = threading.Event()

    def make(epoch: int):
        if epoch == 1:
            started.set()
        return source(epoch)

    with EpochPrefetcher(make, depth=2) as epochs:
        batches = epochs.epoch(0)
        assert next(batches) == (0, 0)
        # One batch of epoch 0 is still unread, yet epoch 1's pipeline is already running.
        assert started.wait(timeout=5)
        assert list(batches) == [(0, 1)]


def test_an_epoch_left_early_is_skipped_not_replayed():
    with EpochPrefetcher(Epochs(4)) as epochs:
        first = epochs.epoch(0)
        assert next(first) == (0, 0)
        assert list(epochs.epoch(1)) == [(1, 0), (1, 1), (1, 2), (1, 3)]


def test_a_producer_error_is_raised_in_the_consumer():
    def make(epoch: int):
        yield (epoch, 0)
        raise OSError("shard part-3.parquet is truncated")

    with EpochPrefetcher(make) as epochs:
        batches = epochs.epoch(0)
        assert next(batches) == (0, 0)
        with pytest.raises(OSError, match="part-3"):
            next(batches)


def test_an_empty_epoch_is_an_error_not_a_hang():
    with EpochPrefetcher(Epochs(0)) as epochs, pytest.raises(RuntimeError, match="too small"):
        list(epochs.epoch(0))


def test_close_stops_the_producer_thread():
    epochs = EpochPrefetcher(Epochs(3))
    assert next(epochs.epoch(0)) == (0, 0)
    epochs.close()
    assert not any(t.name == "mpmae-epoch-prefetch" and t.is_alive()
                   for t in threading.enumerate())


def test_the_rest_of_a_resumed_epoch_may_be_empty():
    def make(epoch: int):
        return [] if epoch == 3 else [f"{epoch}-a"]

    with EpochPrefetcher(make, first_epoch=3, resumed=True) as epochs:
        assert list(epochs.epoch(3)) == []
        assert list(epochs.epoch(4)) == ["4-a"]
