"""bench_scale at a tiny size: every phase measured in both arms, the slopes fitted, the
targets judged from the figures, the figure written; and the slope fit itself."""

import json

import pytest
from benchmark_script import load_benchmark


@pytest.fixture(scope="module")
def slopes():
    return load_benchmark("slopes")


def test_the_slope_is_the_power_of_the_growth_and_above_1_1_is_flagged(slopes):
    work = [1e3, 1e4, 1e5]
    assert slopes.slope([(w, 5.0) for w in work]) == 0
    assert slopes.slope([(w, 2e-3 * w) for w in work]) == 1
    assert slopes.slope([(w, w * w) for w in work]) == 2
    assert slopes.verdict(1.1) == "ok"
    assert slopes.verdict(slopes.slope([(w, w**1.2) for w in work])) == \
        "grows faster than the work"
    # what cannot be fitted is said, not guessed: one work, or no positive cost
    assert slopes.slope([(1e3, 1.0), (1e3, 2.0)]) is None
    assert slopes.verdict(slopes.slope([(1e3, 0.0), (1e4, None)])) == "too few points"


def test_a_tiny_run_measures_every_phase_in_both_arms(ray_local, tmp_path):
    bench = load_benchmark("bench_scale")
    args = bench.parse_args([
        "--tiles", "256", "512", "--tiles-per-shard", "64", "--min-shards", "2",
        "--shards", "--arms", "local", "s3", "--s3-cap", "256", "--convert-cap", "256",
        "--stream-cap", "512", "--batch", "32", "--latency-ms", "5",
        "--figure", str(tmp_path / "curves.png")])
    result = bench.run(args, tmp_path / "work")
    json.dumps(result)  # what main prints

    small, large = result["datasets"]["256x4"], result["datasets"]["512x8"]
    assert "s3" in small and "s3" not in large  # over --s3-cap
    assert "convert" in small["local"] and "convert" not in large["local"]
    for arm in (small["local"], small["s3"], large["local"]):
        assert arm["synth"]["tiles_per_core_s"] > 0 and arm["synth"]["bytes"] > 0
        assert arm["verify"]["core_ms_per_tile"] > 0
        stream = arm["stream"]
        assert 0 < stream["tiles"] <= stream["epoch_tiles"] and stream["first_batch_s"] > 0
        assert stream["peaks"]["driver_rss_mb"] > 0 and stream["peaks"]["object_store_mb"] >= 0
        assert stream["stages"]["sum"] == pytest.approx(stream["stages"]["cores_x_wall"],
                                                        abs=0.01)
        # a resume half-way reads only what is left of the epoch (row groups of 64 tiles)
        resume = arm["resume"]
        assert resume["epoch_tiles"] - resume["skipped"] <= resume["tiles_planned"] \
            < resume["epoch_tiles"] - resume["skipped"] + 64
        assert resume["tiles_read"] == resume["tiles_planned"]
        assert not resume["read_skipped_tiles"]
    # no footer read: the manifest (a HEAD, a GET), then a LIST of each split's folder
    assert small["s3"]["open"]["requests"] == 2 + 3 < 2 + small["s3"]["synth"]["shards"]
    assert small["local"]["convert"]["cpu_s"]["ray_workers"] > 0  # shards as Ray tasks

    fitted = result["slopes"]["tiles"]["local"]
    assert set(fitted) == set(bench.COSTS) - {"first_step_s"}  # an opt-in phase
    assert fitted["synth_cpu_s"]["slope"] is not None
    assert fitted["convert_cpu_s"]["verdict"] == "too few points"  # one converted size
    assert result["targets"]["resume_skips_without_reading"]["met"]
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_the_command_phases_time_a_real_pretrain_and_the_evaluate_embed_stage(ray_local,
                                                                              tmp_path):
    bench = load_benchmark("bench_scale")
    args = bench.parse_args([
        "--tiles", "--shards", "4", "--shard-sweep-tiles", "128", "--arms", "s3",
        "--latency-ms", "5", "--phases", "first_step", "embed", "--embed-samples", "24", "48",
        "--figure", ""])
    result = bench.run(args, tmp_path / "work")
    json.dumps(result)

    s3 = result["datasets"]["128x4"]["s3"]
    assert set(s3) == {"synth", "first_step"}  # only the phases asked for
    [launch] = s3["first_step"]["runs"]
    # the step came before the command ended, and its data came through the proxy
    assert 0 < launch["first_step_s"] == s3["first_step"]["first_step_s"] < launch["ended_s"]
    assert launch["requests"] > 0
    # the manifest was read before the step; the command's end (checkpoint) came after
    before = launch["requests_before_step"]
    assert before.get("GET", 0) > 0 and sum(before.values()) <= launch["requests"]
    assert result["slopes"]["shards"]["s3"]["first_step_s"]["verdict"] == "too few points"

    embed = result["embed"]
    small, large = embed["by_samples"][24], embed["by_samples"][48]
    assert 0 < small["samples"] < large["samples"] <= 48  # the synthetic world's split
    assert all(e["core_ms_per_sample"] > 0 for e in embed["by_samples"].values())
    assert embed["slope_cpu_vs_samples"] is not None
