"""Consecutive epochs of a stream, each started before the one before it is used up.

Ray Data runs a new execution for every epoch of a training split: planning, starting read
tasks and reading the first row group stall the training loop at every epoch boundary
(measured: docs/ray-2.60.md). Here a background thread pulls one epoch's batches after the
other into a small queue, so the next epoch's pipeline starts while the loop still trains
on the current epoch's last queued batches.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from mpmae.errors import MpmaeError

T = TypeVar("T")

_POLL_S = 0.1  # how often a blocked producer looks whether it was closed


class EmptyEpochError(MpmaeError, RuntimeError):
    """An epoch yielded no batch at all (a split smaller than one batch, with drop_last)."""


class _Failure:
    """An exception raised while producing, re-raised in the consumer's thread."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class EpochPrefetcher(Generic[T]):
    """Batches of epochs ``first_epoch, first_epoch + 1, …`` from ``make_epoch(epoch)``.

    Call :meth:`epoch` with increasing epoch numbers; an epoch the caller leaves early is
    skipped, not replayed. ``depth`` batches are held ahead; close (or use ``with``) when done.
    ``resumed``: the first epoch is the rest of an interrupted one, which may hold no batch.
    """

    def __init__(self, make_epoch: Callable[[int], Iterable[T]], first_epoch: int = 0,
                 depth: int = 2, resumed: bool = False) -> None:
        self._make_epoch = make_epoch
        self._resumed = resumed
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._closed = threading.Event()
        self._pending: tuple[int, object] | None = None  # an item read ahead of its epoch
        self._thread = threading.Thread(target=self._produce, args=(first_epoch,),
                                        name="mpmae-epoch-prefetch", daemon=True)
        self._thread.start()

    def epoch(self, epoch: int) -> Iterator[T]:
        """The batches of ``epoch`` in order; ends where the next epoch's batches begin."""
        while True:
            got, item = self._next()
            if isinstance(item, _Failure):
                raise item.error
            if got < epoch:  # the rest of an epoch the caller stopped early
                continue
            if got > epoch:
                self._pending = (got, item)
                return
            yield item

    def close(self) -> None:
        """Stop the producer; batches still queued are dropped."""
        self._closed.set()
        self._thread.join(timeout=10 * _POLL_S)

    def __enter__(self) -> EpochPrefetcher[T]:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _next(self) -> tuple[int, object]:
        if self._pending is not None:
            item, self._pending = self._pending, None
            return item
        return self._queue.get()

    def _produce(self, epoch: int) -> None:
        first = epoch
        try:
            while not self._closed.is_set():
                empty = True
                for batch in self._make_epoch(epoch):
                    empty = False
                    if not self._put((epoch, batch)):
                        return
                if empty and not (self._resumed and epoch == first):
                    raise EmptyEpochError(
                        f"epoch {epoch} delivered no batch: the data split is too small for "
                        "the batch size; use a smaller batch size or a larger split")
                epoch += 1
        except BaseException as error:  # handed to the consumer, raised in its thread
            self._put((epoch, _Failure(error)))

    def _put(self, item: tuple[int, object]) -> bool:
        """Queue ``item`` unless closed first; False when closed."""
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False
