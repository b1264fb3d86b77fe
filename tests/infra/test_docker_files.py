"""infra/docker: the Dockerfiles parse into instructions, pin their bases and packages, run
as a non-root user, and the constraints pin every runtime dependency of the project.
(No Docker engine here: nothing is built.)"""

from __future__ import annotations

import re
from importlib.metadata import requires
from pathlib import Path

import pytest
from infra_modules import ROOT, load

DOCKER = ROOT / "infra" / "docker"
make_constraints = load("infra/docker/make_constraints.py")


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped and continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", path.read_text())
    pairs = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def pins() -> dict[str, str]:
    lines = (DOCKER / "constraints.txt").read_text().splitlines()
    return dict(line.split("==") for line in lines if line and not line.startswith("#"))


def arguments(path: Path, keyword: str) -> list[str]:
    return [rest for kw, rest in instructions(path) if kw == keyword]


@pytest.mark.parametrize("name", ["Dockerfile", "mlflow.Dockerfile"])
def test_parses_into_known_instructions(name):
    known = {"FROM", "RUN", "COPY", "USER", "WORKDIR", "ENV", "EXPOSE", "ENTRYPOINT", "CMD",
             "ARG", "LABEL"}
    parsed = instructions(DOCKER / name)
    assert parsed[0][0] == "FROM"
    assert {kw for kw, _ in parsed} <= known


@pytest.mark.parametrize("name", ["Dockerfile", "mlflow.Dockerfile"])
def test_base_image_is_pinned(name):
    (base,) = arguments(DOCKER / name, "FROM")
    image, _, tag = base.rpartition(":")
    assert image and re.fullmatch(r"[\w.-]+", tag) and tag != "latest", base


# The uid:gid each image runs as: the base image's ray user, the user mlflow.Dockerfile makes.
IMAGE_USERS = {"Dockerfile": (1000, 100), "mlflow.Dockerfile": (1000, 1000)}


def image_user(name: str) -> tuple[int, int]:
    users = arguments(DOCKER / name, "USER")
    assert users, f"{name} runs as root: it has no USER"
    # Numeric: Kubernetes cannot check runAsNonRoot against a user name.
    assert re.fullmatch(r"\d+:\d+", users[-1]), users[-1]
    uid, gid = map(int, users[-1].split(":"))
    return uid, gid


@pytest.mark.parametrize("name", ["Dockerfile", "mlflow.Dockerfile"])
def test_runs_as_a_numeric_non_root_user(name):
    uid, gid = image_user(name)
    assert uid != 0 and gid != 0
    assert (uid, gid) == IMAGE_USERS[name]


def test_mlflow_image_creates_the_user_it_runs_as():
    (run,) = arguments(DOCKER / "mlflow.Dockerfile", "RUN")
    uid, gid = image_user("mlflow.Dockerfile")
    assert f"groupadd --gid {gid} " in run
    assert f"useradd --create-home --uid {uid} --gid {gid}" in run


def test_project_base_follows_the_ray_pin_and_python_311():
    (base,) = arguments(DOCKER / "Dockerfile", "FROM")
    assert base.startswith(f"rayproject/ray:{pins()['ray']}-py311-"), base


def test_project_image_installs_pinned_dependencies_then_the_project():
    runs = arguments(DOCKER / "Dockerfile", "RUN")
    installs = [r for r in runs if "pip install" in r]
    assert installs and all("infra/docker/constraints.txt" in r for r in installs), installs
    assert any(re.search(r"pip install .*-c infra/docker/constraints.txt \.(\s|$)", r)
               for r in installs)
    assert "RAY_AUTH_MODE=token" in arguments(DOCKER / "Dockerfile", "ENV")


def test_project_image_copies_what_the_jobs_need_and_the_context_allows_it():
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line.removeprefix("!").rstrip("/") for line in ignore if line.startswith("!")}
    sources = []
    for copy in arguments(DOCKER / "Dockerfile", "COPY"):
        parts = [p for p in copy.split() if not p.startswith("--")]
        sources += parts[:-1]
    assert {"jobs", "platform", "pyproject.toml"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        assert source in allowed, f"{source} is excluded by Dockerfile.dockerignore"


def test_mlflow_image_has_the_postgres_and_s3_clients_at_pinned_versions():
    (run,) = arguments(DOCKER / "mlflow.Dockerfile", "RUN")
    installed = dict(re.findall(r"([A-Za-z0-9_.-]+)(?:\[[\w,]+\])?==([\w.]+)", run))
    assert {"mlflow", "psycopg2-binary", "boto3", "flask-wtf"} <= set(installed)
    assert "mlflow[auth]==" in run  # the basic-auth app of infra/k8s/mlflow.yaml
    for name in ("mlflow", "boto3"):
        assert installed[name] == pins()[name], name
    assert arguments(DOCKER / "mlflow.Dockerfile", "ENTRYPOINT") == ['["mlflow", "server"]']


def test_constraints_pin_every_runtime_dependency():
    runtime = [r for r in requires("mpmae") if "extra ==" not in r]
    names = {re.match(r"[A-Za-z0-9._-]+", r).group(0) for r in runtime}
    missing = names - set(pins())
    assert not missing, f"{missing} unpinned: run python infra/docker/make_constraints.py"
    assert all(re.fullmatch(r"\d[\w.]*", v) for v in pins().values())


def test_make_constraints_writes_the_same_names(tmp_path):
    out = tmp_path / "constraints.txt"
    make_constraints.main(["--output", str(out)])
    written = [line.split("==")[0] for line in out.read_text().splitlines()
               if line and not line.startswith("#")]
    assert written == list(pins())
