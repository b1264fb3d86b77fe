import sys
from typing import ClassVar

import pytest
from ray import cloudpickle
from ray.data._internal.execution.execution_callback import ExecutionCallback

from mpmae.data.stream.tile_dataset import TileDataset
from mpmae.modalities import resolve_pretext
from mpmae.ray_fixes.stream_callbacks import ReservationWait


class FirstBudget(ExecutionCallback):
    """Records the resources each execution is given when it starts."""

    seen: ClassVar[list] = []

    def before_execution_starts(self, executor) -> None:
        FirstBudget.seen.append(executor._cluster_autoscaler.get_total_resources())


# Read tasks carry the dataset's context, callbacks included, to Ray workers, which
# cannot import this test module by name.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.mark.ray
@pytest.mark.parametrize("wait", [False, True])
def test_each_execution_starts_with_its_cpus_only_after_the_wait(ray_local, small_world, wait):
    data = TileDataset.open(str(small_world)).read("train", resolve_pretext("S2"))
    callbacks = data.context.custom_execution_callback_classes
    assert ReservationWait in callbacks  # the stream carries it
    # The first execution in a Ray session starts the coordinator actor, which can take
    # longer than the wait; measure the epochs after it, as training runs them.
    assert sum(len(b["sentinel2"]) for b in data.iter_batches(batch_size=32)) > 0
    # This dataset's own list (the process's context keeps its own); called after the
    # wait, FirstBudget sees what the executor's first look at its budget would.
    data.context.custom_execution_callback_classes = [
        *(c for c in callbacks if wait or c is not ReservationWait), FirstBudget]
    FirstBudget.seen = []
    for _ in range(2):  # each epoch is an execution of its own
        assert sum(len(b["sentinel2"]) for b in data.iter_batches(batch_size=32)) > 0
    cpus = [r.cpu for r in FirstBudget.seen]
    assert len(cpus) == 2
    # Other executions still alive would share the 2 CPUs, but never leave none.
    assert all(c > 0 for c in cpus) if wait else cpus == [0, 0]
