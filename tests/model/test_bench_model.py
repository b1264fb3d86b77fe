"""The model benchmark runs end to end on tiny settings and prints the promised JSON."""

import json
import queue

import pytest
from benchmark_script import load_benchmark

TINY = ["--batch", "2", "--img", "16", "--iters", "1", "--warmup", "0"]


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_model")


def test_timings_json(bench, capsys):
    bench.main([*TINY, "--no-memory"])
    result = json.loads(capsys.readouterr().out)
    assert result["settings"]["kept_patches"] == "1/4"
    for part in ("mpmae", "encoder"):
        assert result[part]["sparse"]["tiles_per_s"] > 0
        assert result[part]["dense_reference"]["tiles_per_s"] > 0
        assert result[part]["speedup"] > 0


def test_memory_measurement(bench):
    results = queue.Queue()
    bench.peak_memory_child(bench.parse_args(TINY), ("encoder", "sparse"), results)
    memory = results.get_nowait()
    assert memory["peak_mem_mb"] > 0 and memory["step_mem_mb"] <= memory["peak_mem_mb"]
