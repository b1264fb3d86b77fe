"""What other wings use of evaluate comes through ``mpmae.evaluate``, and importing it (or
its config) stays light: no torch for the command line's help."""

from __future__ import annotations

import subprocess
import sys

import pytest

import mpmae.evaluate


def test_every_exported_name_resolves():
    for name in mpmae.evaluate.__all__:
        assert getattr(mpmae.evaluate, name) is not None
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = mpmae.evaluate.no_such_name


def test_the_type_checkers_see_what_the_front_door_exports():
    # The names are listed twice (for type checkers and for __getattr__): keep them one list.
    import ast
    from pathlib import Path

    tree = ast.parse(Path(mpmae.evaluate.__file__).read_text())
    seen = {(node.module, alias.name) for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module.startswith("mpmae.evaluate.")
            for alias in node.names}
    assert seen == {(home, name) for name, home in mpmae.evaluate._HOMES.items()}


def test_the_front_door_and_its_config_do_not_load_torch():
    probe = ("import sys; from mpmae.evaluate import EvaluateConfig; "
             "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
