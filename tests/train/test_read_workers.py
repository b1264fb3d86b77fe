"""data.keep_freed_memory: the training stream's read tasks run in workers that keep the
memory they free (mpmae.data.stream.worker_memory), or, turned off, in Ray's own.
(That a read's runtime env reaches its workers: tests/data/test_stream.py.)"""

from __future__ import annotations

import pytest

from mpmae.config import load_config
from mpmae.data.stream.tile_dataset import TileDataset
from mpmae.data.stream.worker_memory import READ_TASK_ENV
from mpmae.storage import resolve
from mpmae.train.config import PretrainConfig
from mpmae.train.resume import ResumingStream

pytestmark = pytest.mark.ray


@pytest.mark.parametrize(("setting", "env"), [([], {"env_vars": READ_TASK_ENV}),
                                              (["data.keep_freed_memory=false"], None)])
def test_the_stream_reads_in_workers_that_keep_freed_memory_unless_turned_off(
        ray_local, small_world, tmp_path, setting, env):
    cfg = load_config(PretrainConfig, None, setting)
    data = ResumingStream(TileDataset.open(str(small_world)), cfg, resolve(str(tmp_path)))()
    # the read operator of the dataset's plan, as Ray Data will run it
    assert data._logical_plan.dag.ray_remote_args.get("runtime_env") == env
    assert data.count() > 0
