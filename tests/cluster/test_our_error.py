"""Which failure of a Ray Train run is ours (an ``MpmaeError``: the user can fix it) and
which is not, read from Ray's real exception types."""

from __future__ import annotations

from ray.exceptions import RayTaskError
from ray.train import WorkerGroupError

from mpmae.cluster.task_result import our_error
from mpmae.config import ConfigError


def test_our_error_is_found_in_a_workers_failure():
    ours = ConfigError("bad shard: re-run mpmae data check")
    failed = WorkerGroupError("training failed", {0: RuntimeError("rank 0 fine"),
                                                  1: RayTaskError("train_loop", "tb", ours)})
    assert our_error(failed) is ours


def test_our_error_is_found_down_the_chain_of_causes():
    ours = ConfigError("no such partition")
    try:
        try:
            raise ours
        except ConfigError as e:
            raise RuntimeError("wrapped") from e
    except RuntimeError as wrapped:
        assert our_error(wrapped) is ours


def test_a_failure_that_is_not_ours_has_none():
    failed = WorkerGroupError("training failed", {0: RuntimeError("CUDA out of memory")})
    assert our_error(failed) is None
