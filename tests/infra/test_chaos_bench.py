"""benchmarks/chaos.py's judgement of a run, without running one: what counts as finished or
as one clear line, the step rate read off progress lines, and the table."""

from __future__ import annotations

import pytest
from benchmark_script import load_benchmark

chaos = load_benchmark("chaos")


@pytest.mark.parametrize("code, lines, expected", [
    (0, ["step 1/4", "done"], "finished"),
    (75, ["step 3/2000", "mpmae: preempted at step 3 (…); run the same command to resume"],
     "one clear line"),
    (2, ["some Ray warning", "mpmae: error: cannot reach s3://b/k", ""], "one clear line"),
    (2, ["Traceback (most recent call last):", "  ...", "mpmae: error: x"],
     "exit 2: mpmae: error: x"),
    (1, ["ValueError: boom"], "exit 1: ValueError: boom"),
])
def test_an_outcome_is_finished_one_clear_line_or_what_happened(code, lines, expected):
    assert chaos.outcome(code, lines) == expected


def test_the_step_rate_is_read_off_the_progress_lines_inside_the_window():
    seen = [(0.0, "step 1/9 (11%)"), (1.0, "step 2/9"), (3.0, "noise"), (3.0, "step 6/9"),
            (9.0, "step 9/9")]
    assert chaos._rate(seen, 0.5, 5.0) == {"steps": 4, "per_s": 2.0}
    assert chaos._rate(seen, 4.0, 5.0) == {"steps": 0, "per_s": 0.0}  # fewer than two lines
    assert chaos._window(seen, 2, 4) == (1.0, 3.0)


def test_the_table_has_a_line_per_row_and_a_dash_where_nothing_was_measured():
    rows = [chaos.row("S3 endpoint down", "data verify", "one clear line", recover_s=82.77),
            chaos.row("SIGTERM (spot notice)", "pretrain", "finished", steps_lost=0)]
    lines = chaos.table(rows).splitlines()
    assert lines[0] == "| fault | verb | outcome | steps_lost | data_lost | recover_s |"
    assert lines[2] == "| S3 endpoint down | data verify | one clear line | — | 0 | 82.8 |"
    assert lines[3] == "| SIGTERM (spot notice) | pretrain | finished | 0 | 0 | — |"
