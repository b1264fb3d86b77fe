"""Write the files that ray-cluster.yaml mounts on every node, before `ray up`.

    python infra/aws/prepare.py [--include-aws-keys]

Into ~/.mpmae/cluster (mode 0700):
  auth_token            the cluster's Ray token; made once, then kept, so a running cluster
                        and your submit command keep agreeing (mounted as ~/.ray/auth_token)
  node/mpmae.env        your MLflow / S3 settings, exported before `ray start` on each node
  node/constraints.txt  infra/docker/constraints.txt (pinned dependency versions)
  node/mpmae-*.whl      this checkout, built as a wheel, installed by the setup commands

AWS keys stay out of mpmae.env unless --include-aws-keys is given: on EC2 the nodes get
S3 access from their instance profile. Pass it for S3-compatible stores (MinIO, Ceph).
Only variable names are printed, never values. Nothing is written while ray-cluster.yaml
lets SSH in from its placeholder or from the whole internet (infra/aws/access.py).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

import yaml

from mpmae.cluster.submit import PASSED_ENV, SECRET_ENV

# access.py sits beside this script (infra/ is not a package).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from access import CLUSTER_YAML, AccessError, ssh_cidrs

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = Path("~/.mpmae/cluster")
AWS_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
# MPMAE_HOME is a path on this machine; on the nodes the default cache folder is right.
# The MLflow login goes too: the file is private to the nodes' user (never a job's env).
NODE_ENV = tuple(name for name in PASSED_ENV + SECRET_ENV if name != "MPMAE_HOME")
# What pyproject.toml needs beside platform/ to build the package.
PACKAGED = ("pyproject.toml", "README.md")


def write_private(path: Path, text: str) -> None:
    """Create or replace ``path`` readable by its owner only (it may hold secrets)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def ensure_token(path: Path) -> bool:
    """Make a token at ``path`` unless one is there; True if a new one was made."""
    if path.is_file() and path.read_text().strip():
        return False
    write_private(path, secrets.token_hex(32))
    return True


def node_env(env: Mapping[str, str], include_aws_keys: bool) -> dict[str, str]:
    """The variables every node's Ray processes should see, from the user's ``env``."""
    names = [n for n in NODE_ENV if include_aws_keys or n not in AWS_KEYS]
    chosen = {name: env[name] for name in names if env.get(name)}
    tracking = chosen.get("MLFLOW_TRACKING_URI", "")
    if urlparse(tracking).scheme in ("", "file", "sqlite"):
        # A local store here means nothing on the nodes; they fall back to their own.
        chosen.pop("MLFLOW_TRACKING_URI", None)
    return chosen


def env_file_text(variables: Mapping[str, str]) -> str:
    """``NAME=value`` lines a POSIX shell can source (``set -a; . FILE``)."""
    lines = [f"{name}={shlex.quote(value)}" for name, value in variables.items()]
    return "# Written by infra/aws/prepare.py; sourced before `ray start`.\n" + "\n".join(
        [*lines, ""])


def build_wheel(dest: Path) -> Path:
    """Build this checkout's wheel into ``dest`` (old mpmae wheels removed first)."""
    for old in dest.glob("mpmae-*.whl"):
        old.unlink()
    # Built from a copy, so the checkout gets no build/ or egg-info folders; without build
    # isolation, so the installed setuptools is used rather than a downloaded one.
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp)
        for name in PACKAGED:
            shutil.copy(ROOT / name, source / name)
        shutil.copytree(ROOT / "platform", source / "platform",
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
             "--no-build-isolation", "--wheel-dir", str(dest), str(source)],
            check=True,
        )
    (wheel,) = dest.glob("mpmae-*.whl")
    return wheel


def prepare(out: Path, env: Mapping[str, str], cluster: Mapping,
            include_aws_keys: bool = False) -> None:
    """Write everything ``cluster`` (ray-cluster.yaml)'s file_mounts name under ``out``;
    refuse, before writing anything, a cluster whose SSH is open to the world."""
    ssh_cidrs(cluster)
    node = out / "node"
    node.mkdir(parents=True, exist_ok=True)
    out.chmod(0o700)
    made = ensure_token(out / "auth_token")
    variables = node_env(env, include_aws_keys)
    write_private(node / "mpmae.env", env_file_text(variables))
    shutil.copyfile(ROOT / "infra" / "docker" / "constraints.txt", node / "constraints.txt")
    wheel = build_wheel(node)
    print(f"{out}/auth_token: {'new token' if made else 'kept the existing token'}")
    print(f"{node}/mpmae.env: {', '.join(variables) or '(no variables set)'}")
    if "MLFLOW_TRACKING_URI" not in variables:
        print("  note: no MLflow server in MLFLOW_TRACKING_URI; runs will be tracked in a "
              "SQLite file on the head unless each job is given one.")
    print(f"{wheel}: this checkout")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write the token, env file and wheel that ray-cluster.yaml mounts.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="folder to write (ray-cluster.yaml expects the default)")
    parser.add_argument("--cluster-config", type=Path, default=CLUSTER_YAML,
                        help="the cluster launcher config to check (default: ray-cluster.yaml)")
    parser.add_argument("--include-aws-keys", action="store_true",
                        help="also write AWS_ACCESS_KEY_ID/SECRET/SESSION_TOKEN (not "
                             "needed on EC2 with an instance profile)")
    args = parser.parse_args(argv)
    cluster = yaml.safe_load(args.cluster_config.read_text())
    try:
        prepare(args.out.expanduser(), os.environ, cluster, args.include_aws_keys)
    except AccessError as e:
        print(f"prepare.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
