"""The house rules of imports (docs/architecture.md), read from the source: wings import only
downward, no import circles (imports inside functions and type-only ones count), no private
name taken from another wing, Ray's private modules only through ``ray_fixes``."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

RAY_PRIVATE = re.compile(r"\bray(\.[a-z]\w*)*\._[a-z]\w*")
PACKAGE = Path(__file__).resolve().parents[1] / "platform" / "mpmae"

# Top to bottom: a module may import its own wing and the wings below it, never above.
WINGS = (
    "cli",
    "tune",
    "pipeline",
    "evaluate",
    "train",
    "data",
    "mmearth_ckpt",
    "track",
    "model",
    "cluster",
    "ray_fixes",
    "storage",
    "modalities",
    "config_flags",
    "config",
    "errors",
    "redact",
    "version",
    "lazy",
)


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported module, dotted (a submodule where the name is one)
    names: tuple[str, ...]
    line: int

    def __str__(self) -> str:
        names = f" ({', '.join(self.names)})" if self.names else ""
        return f"{self.source}:{self.line} imports {self.target}{names}"


def module_name(path: Path) -> str:
    parts = ["mpmae", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str) -> bool:
    relative = Path(*dotted.split(".")[1:]) if "." in dotted else Path()
    return (PACKAGE / relative).with_suffix(".py").is_file() or (
        PACKAGE / relative / "__init__.py").is_file()


def imports_of(path: Path) -> list[Import]:
    source = module_name(path)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(source, a.name, (), node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{source}:{node.lineno}: use absolute imports"
            names = tuple(a.name for a in node.names)
            submodules = [n for n in names if is_module(f"{node.module}.{n}")]
            found += [Import(source, f"{node.module}.{n}", (), node.lineno) for n in submodules]
            rest = tuple(n for n in names if n not in submodules)
            if rest or not submodules:
                found.append(Import(source, node.module, rest, node.lineno))
    return found


def all_imports() -> list[Import]:
    return [i for path in sorted(PACKAGE.rglob("*.py")) for i in imports_of(path)]


def ours() -> list[Import]:
    return [i for i in all_imports() if i.target == "mpmae" or i.target.startswith("mpmae.")]


def wing(dotted: str) -> str | None:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else None  # None: the package's own front door


def test_every_wing_is_placed() -> None:
    wings = {wing(module_name(p)) for p in PACKAGE.rglob("*.py")} - {None}
    assert wings <= set(WINGS), f"place {sorted(wings - set(WINGS))} in WINGS and the docs"


def test_wings_import_only_downward() -> None:
    upward = [
        str(i) for i in ours()
        if wing(i.source) and wing(i.target) and wing(i.source) != wing(i.target)
        and WINGS.index(wing(i.target)) < WINGS.index(wing(i.source))
    ]
    assert not upward, "imports against the order of the wings:\n" + "\n".join(upward)


def test_nothing_imports_the_package_front_door() -> None:
    inward = [str(i) for i in ours() if i.target == "mpmae" and wing(i.source)]
    assert not inward, "import from the module that defines it:\n" + "\n".join(inward)


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_private_name_crosses_a_wing() -> None:
    crossing = [
        str(i) for i in ours()
        if wing(i.source) != wing(i.target) and any(is_private(n) for n in i.names)
    ]
    assert not crossing, "make these public where they live:\n" + "\n".join(crossing)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles() -> None:
    edges: dict[str, set[str]] = {}
    for i in ours():
        if i.source != i.target:
            edges.setdefault(i.source, set()).add(i.target)
    circles = cycles(edges)
    assert not circles, "import circles:\n" + "\n".join(" ↔ ".join(c) for c in circles)


def test_ray_private_modules_only_through_ray_fixes() -> None:
    private = [
        str(i) for i in all_imports()
        if wing(i.source) != "ray_fixes" and i.target.split(".")[0] == "ray"
        and any(p.startswith("_") for p in i.target.split(".")[1:])
    ]
    # A private name can also be reached by attribute or by importlib's string.
    private += [
        f"{module_name(path)}:{n}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py")) if wing(module_name(path)) != "ray_fixes"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if RAY_PRIVATE.search(line)
    ]
    assert not private, "wrap these in mpmae/ray_fixes/:\n" + "\n".join(private)


def test_the_rules_see_a_violation() -> None:
    # The checks above parse real source; this proves they can fail.
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert RAY_PRIVATE.search('guard.load("ray._private.worker")')
    assert not RAY_PRIVATE.search("ray.train.get_context()")
    sample = PACKAGE / "cli.py"
    assert any(i.target.startswith("mpmae.") for i in imports_of(sample))
