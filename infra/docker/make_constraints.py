"""Write infra/docker/constraints.txt: the installed version of each direct dependency.

    python infra/docker/make_constraints.py     # in the environment whose versions to pin

The image (infra/docker/Dockerfile) and the AWS cluster's setup commands install with
``-c constraints.txt``, so a cluster runs the versions that were tested here, whatever
newer releases the ranges in pyproject.toml would allow.
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

OUTPUT = Path(__file__).resolve().with_name("constraints.txt")
# Not a dependency of the package, but of what runs beside it: the AWS autoscaler on the
# head node and the MLflow server's S3 artifact store.
EXTRA = ("boto3",)
HEADER = ("# Pinned versions of mpmae's direct dependencies, from the environment the tests "
          "ran in.\n# Regenerate: python infra/docker/make_constraints.py\n")


def requirement_names() -> list[str]:
    """Names of the installed project's runtime dependencies: its requirements that no
    extra asks for, without their extras and version ranges."""
    try:
        specs = requires("mpmae") or []
    except PackageNotFoundError:
        sys.exit("mpmae is not installed here: python -m pip install -e '.[test]' first.")
    runtime = [spec for spec in specs if "extra ==" not in spec]
    return [re.match(r"[A-Za-z0-9._-]+", spec).group(0) for spec in runtime]


def constraints(names: list[str]) -> str:
    """``name==version`` for each name, as installed in this environment."""
    lines = []
    for name in names:
        try:
            lines.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            sys.exit(f"{name} is not installed here: python -m pip install -e '.[test]' "
                     "first, then run this again.")
    return HEADER + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    args.output.write_text(constraints([*requirement_names(), *EXTRA]))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
