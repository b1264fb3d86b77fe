"""infra/local/stack.py end to end, through its command line: `up` starts an S3 endpoint, an
MLflow server and a Ray head that all answer (Ray only with its token), MLflow puts
artifacts in the S3 bucket, and `down` stops exactly the processes `up` recorded."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from infra_modules import ROOT, load

pytestmark = [pytest.mark.ray, pytest.mark.s3]
STACK = ROOT / "infra" / "local" / "stack.py"
pids = load("infra/local/pids.py")


def run_stack(verb: str, state_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(STACK), verb, "--state-dir", str(state_dir),
                           *extra], capture_output=True, text=True, timeout=180)


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


def exported(stdout: str) -> dict[str, str]:
    lines = [line.removeprefix("export ") for line in stdout.splitlines()
             if line.startswith("export ")]
    return dict(line.split("=", 1) for line in lines)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("stack")
    up = run_stack("up", state_dir, "--num-cpus", "1", "--object-store-mb", "100")
    try:
        logs = "".join(p.read_text() for p in (state_dir / "logs").glob("*.log"))
        assert up.returncode == 0, f"{up.stdout}\n{up.stderr}\n{logs}"
        yield state_dir, exported(up.stdout)
    finally:
        if (state_dir / "stack.json").exists():
            run_stack("down", state_dir)


def test_up_prints_and_writes_the_exports(stack):
    state_dir, env = stack
    assert {"MLFLOW_TRACKING_URI", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION",
            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "RAY_ADDRESS",
            "RAY_API_SERVER_ADDRESS", "RAY_AUTH_TOKEN_PATH"} <= set(env)
    assert env["RAY_AUTH_MODE"] == "token"
    assert exported((state_dir / "env.sh").read_text()) == env


def test_ray_answers_with_the_token_only(stack):
    import ray

    _, env = stack
    token = Path(env["RAY_AUTH_TOKEN_PATH"]).read_text()
    status, body = get(f"{env['RAY_API_SERVER_ADDRESS']}/api/version", token)
    assert status == 200 and json.loads(body)["ray_version"] == ray.__version__
    assert get(f"{env['RAY_API_SERVER_ADDRESS']}/api/version")[0] == 401


def test_mlflow_is_healthy(stack):
    _, env = stack
    assert get(f"{env['MLFLOW_TRACKING_URI']}/health") == (200, b"OK")


def test_mlflow_keeps_artifacts_in_the_s3_bucket(stack):
    import boto3

    _, env = stack
    url = f"{env['MLFLOW_TRACKING_URI']}/api/2.0/mlflow-artifacts/artifacts/check/hello.txt"
    request = urllib.request.Request(url, data=b"hello", method="PUT")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"],
                      region_name=env["AWS_DEFAULT_REGION"],
                      aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    assert "mpmae" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    stored = s3.get_object(Bucket="mpmae", Key="mlflow-artifacts/check/hello.txt")
    assert stored["Body"].read() == b"hello"


def test_down_stops_exactly_the_recorded_processes(stack):
    state_dir, _ = stack
    state = json.loads((state_dir / "stack.json").read_text())
    recorded = {pids.Proc(**proc) for proc in state["services"].values()}
    ray_processes = pids.identify_all(pids.naming(state["ray_temp_dir"]))
    assert len(recorded) == 3 and all(pids.is_running(p) for p in recorded)
    assert ray_processes

    down = run_stack("down", state_dir)
    assert down.returncode == 0, down.stderr
    assert not [p for p in recorded | ray_processes if pids.is_running(p)]
    assert not pids.naming(state["ray_temp_dir"])
    assert not Path(state["ray_temp_dir"]).exists()
    assert not (state_dir / "stack.json").exists()
    assert run_stack("down", state_dir).returncode == 1  # nothing left to stop
