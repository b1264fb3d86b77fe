"""``mpmae --help`` and every verb's ``--help`` and ``--help-config`` answer without loading
torch: the config schemas name the model's choices from ``mpmae.model.choices`` and the verbs
import their run's modules only to run. Each command runs in a fresh interpreter, as a user's
would."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from mpmae.cli import build_parser

# Runs mpmae's main with argv, then prints whether torch was imported.
PROBE = """
import contextlib, io, sys
from mpmae.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
print("torch" in sys.modules)
"""


def leaf_commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """Every command path with its parser: ``("data", "synth")``, ``("pretrain",)``, …"""
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        yield prefix, parser
    for action in subparsers:
        for name, sub in action.choices.items():
            yield from leaf_commands(sub, (*prefix, name))


def help_commands() -> list[list[str]]:
    commands = [["--help"]]
    for path, parser in leaf_commands(build_parser()):
        commands.append([*path, "--help"])
        if "--help-config" in parser._option_string_actions:
            commands.append([*path, "--help-config"])
    return commands


def test_the_verbs_with_a_config_are_covered():
    covered = {" ".join(c) for c in help_commands()}
    assert {"pretrain --help-config", "tune --help-config", "evaluate --help-config",
            "data synth --help-config", "import-mmearth --help-config"} <= covered


@pytest.mark.parametrize("argv", help_commands(), ids=" ".join)
def test_help_imports_no_torch(argv):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False", f"mpmae {' '.join(argv)} imported torch"
