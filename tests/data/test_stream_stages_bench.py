"""bench_data's stage breakdown: every CPU second of the session in one stage, and the
stages with idle adding up to cores × wall."""


import pytest
from benchmark_script import load_benchmark


@pytest.fixture(scope="module")
def stages():
    return load_benchmark("stream_stages")


def test_the_stages_split_each_role_and_add_up_to_cores_times_wall(stages):
    roles = {"driver": 0.5, "ray_workers": 0.8, "ray_daemons": 0.1, "s3_endpoint": 0.2}
    clock = {"tiles": 1010, "decode": 0.3, "shuffle_copy": 0.2}
    out = stages.breakdown(roles, clock, normaliser_s=0.15, main_thread_s=0.25,
                           machine_idle=0.3, wall_s=1.0, cores=2, tiles=1000)
    assert out["decode"] == 0.3 and out["shuffle_copy"] == 0.2  # core-ms per tile
    assert out["object_store"] == pytest.approx(0.4)  # workers + daemons − task body
    assert out["consumer"] == pytest.approx(0.35) and out["normaliser"] == 0.15
    assert out["s3_endpoint"] == 0.2 and out["idle"] == pytest.approx(0.4)
    assert out["sum"] == out["cores_x_wall"] == 2.0
    assert out["stream_without_normaliser"] == pytest.approx(1.25)
    parts = out["parts"]
    assert parts["object_store_workers"] == pytest.approx(0.3)
    assert parts["consumer_main_thread"] == pytest.approx(0.1)
    assert parts["consumer_other_threads"] == pytest.approx(0.25)
    assert parts["idle_machine"] + parts["idle_other"] == pytest.approx(out["idle"])
    assert out["tiles_read"] == 1010
