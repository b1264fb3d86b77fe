"""The science benchmark's statistics: Student-t intervals over seeds, paired by seed."""

import pytest
from benchmark_script import load_benchmark


@pytest.fixture(scope="module")
def stats():
    return load_benchmark("seed_stats")


def test_three_seeds_use_t_with_two_degrees_of_freedom(stats):
    s = stats.mean_ci95([0.5, 0.6, 0.7])
    assert s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(0.1)
    half = 4.303 * 0.1 / 3**0.5
    assert s["ci95"] == pytest.approx([0.6 - half, 0.6 + half])


def test_one_value_has_no_interval(stats):
    assert stats.mean_ci95([0.4]) == {"mean": 0.4, "std": None, "ci95": None, "n": 1}


def test_differences_are_paired_by_seed(stats):
    # A constant gain with a large spread across seeds: paired, the interval is a point.
    d = stats.paired_difference([0.5, 0.7, 0.9], [0.4, 0.6, 0.8])
    assert d["mean"] == pytest.approx(0.1) and d["ci95"] == pytest.approx([0.1, 0.1])
    assert stats.ranking({"a": [0.2], "b": [0.5], "c": [0.3]}) == ["b", "c", "a"]
