"""The suite collects as CI collects it: pytest's default import mode puts each test folder
on sys.path and imports modules by basename, so two test files with one name in different
folders stop the whole run at collection."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).parent


def test_test_module_basenames_are_unique() -> None:
    by_name: dict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("*.py"):
        by_name[path.name].append(str(path.relative_to(TESTS)))
    clashes = {
        name: paths
        for name, paths in by_name.items()
        if len(paths) > 1 and name != "conftest.py"
    }
    assert not clashes, f"rename one of each: {clashes}"
