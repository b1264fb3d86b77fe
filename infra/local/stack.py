"""The local stack: a Ray head, an MLflow server and an S3 endpoint on this machine.

    python infra/local/stack.py up      # prints the variables to export
    python infra/local/stack.py down    # stops exactly what `up` started

- S3: a moto server (in memory: its data is gone after `down`), with a bucket ``mpmae``.
- MLflow: SQLite backend, artifacts in s3://mpmae/mlflow-artifacts, served through the
  server, so clients need no S3 credentials to log or download artifacts.
- Ray: a head with token auth on, its own temp folder and free ports, so it never meets
  another Ray on the machine; the S3 and MLflow variables are in its environment.

Everything listens on 127.0.0.1. The pids, ports and token live in the state folder
(default: <cache>/stack, <cache> being $MPMAE_HOME or ~/.cache/mpmae); ``env.sh`` there
holds the exports. moto comes with the test extras: python -m pip install -e '.[test]'.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from pids import (
    Proc,
    descendants,
    identify,
    identify_all,
    is_running,
    naming,
    stop,
    terminate,
)

from mpmae.config import cache_dir

BUCKET = "mpmae"
REGION = "us-east-1"
# moto accepts any key pair; these only have to be the same for every client.
LOCAL_KEYS = {"AWS_ACCESS_KEY_ID": "mpmae-local", "AWS_SECRET_ACCESS_KEY": "mpmae-local"}
RAY_PORT_FLAGS = (
    "--port", "--dashboard-port", "--ray-client-server-port", "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port",
    "--node-manager-port", "--object-manager-port",
)
BIN = Path(sys.executable).parent


class StackError(RuntimeError):
    """The stack could not be started or stopped; the message says what to do."""


def free_ports(count: int) -> list[int]:
    """Distinct ports that are free now (all held open together while picked)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def stack_env(s3_port: int, mlflow_port: int) -> dict[str, str]:
    """What a client (and the Ray head) needs to use the stack's S3 and MLflow."""
    s3 = f"http://127.0.0.1:{s3_port}"
    return {
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}",
        "AWS_ENDPOINT_URL": s3,
        "MLFLOW_S3_ENDPOINT_URL": s3,
        "AWS_DEFAULT_REGION": REGION,
        **LOCAL_KEYS,
    }


def client_env(state: dict) -> dict[str, str]:
    """The variables to export in a shell that uses the stack."""
    ray_ports = state["ray_ports"]
    return {
        **state["env"],
        "RAY_ADDRESS": f"127.0.0.1:{ray_ports['--port']}",
        "RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{ray_ports['--dashboard-port']}",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": state["token_path"],
    }


def _clean_env() -> dict[str, str]:
    # The user's own Ray/AWS/MLflow settings must not leak into the stack's services.
    prefixes = ("RAY_", "AWS_", "MLFLOW_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def _launch(command: list[str], env: dict[str, str], log: Path) -> Proc:
    # A session of its own: closing the terminal that ran `up` does not stop the service.
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    return identify(proc.pid) or Proc(proc.pid, -1)


def start_s3(port: int, logs: Path) -> Proc:
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    return _launch(command, _clean_env(), logs / "s3.log")


def start_mlflow(port: int, state_dir: Path, env: dict[str, str], logs: Path) -> Proc:
    command = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--backend-store-uri", f"sqlite:///{state_dir / 'mlflow.db'}",
        "--artifacts-destination", f"s3://{BUCKET}/mlflow-artifacts",
        "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}",
    ]
    # Server-side jobs (GenAI evaluation and the like) are unused here; off, the server
    # starts faster and without its eight job-runner processes.
    server_env = {**_clean_env(), **env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return _launch(command, server_env, logs / "mlflow.log")


def start_ray(ports: dict[str, int], temp_dir: Path, token_path: Path, env: dict[str, str],
              num_cpus: int | None, object_store_mb: int | None, logs: Path) -> Proc:
    command = [
        str(BIN / "ray"), "start", "--head", "--block",
        *(f"{flag}={port}" for flag, port in ports.items()),
        "--dashboard-host=127.0.0.1", f"--temp-dir={temp_dir}", "--disable-usage-stats",
    ]
    if num_cpus is not None:
        command.append(f"--num-cpus={num_cpus}")
    if object_store_mb is not None:
        command.append(f"--object-store-memory={object_store_mb * 1024**2}")
    ray_env = {**_clean_env(), **env, "RAY_AUTH_MODE": "token",
               "RAY_AUTH_TOKEN_PATH": str(token_path), "RAY_USAGE_STATS_ENABLED": "0",
               # Job entrypoints say `python`: make it this environment's.
               "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")])}
    return _launch(command, ray_env, logs / "ray.log")


def answers(url: str, headers: dict[str, str] | None = None) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}),
                                    timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def wait_ready(checks: dict[str, tuple[Proc, Callable[[], bool]]], logs: Path,
               timeout_s: float) -> None:
    """Poll every service until it answers; fail early if one exits."""
    pending = dict(checks)
    deadline = time.monotonic() + timeout_s
    while pending:
        for name, (proc, ready) in list(pending.items()):
            if not is_running(proc):
                raise StackError(f"{name} exited while starting; see {logs / name}.log")
            if ready():
                del pending[name]
        if pending and time.monotonic() > deadline:
            raise StackError(f"{', '.join(pending)} did not answer in {timeout_s:.0f}s; "
                             f"see the logs in {logs}")
        time.sleep(0.3)


def create_bucket(endpoint: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name=REGION,
                 aws_access_key_id=LOCAL_KEYS["AWS_ACCESS_KEY_ID"],
                 aws_secret_access_key=LOCAL_KEYS["AWS_SECRET_ACCESS_KEY"]).create_bucket(
        Bucket=BUCKET)


def read_state(state_dir: Path) -> dict | None:
    """The state ``up`` recorded in ``state_dir``, services as :class:`Proc`; or None."""
    path = state_dir / "stack.json"
    if not path.is_file():
        return None
    state = json.loads(path.read_text())
    state["services"] = {k: Proc(**v) for k, v in state["services"].items()}
    return state


def running_services(state: dict) -> list[str]:
    return [name for name, proc in state["services"].items() if is_running(proc)]


def new_state(state_dir: Path) -> dict:
    """Ports, token, Ray temp folder and environment for a stack not yet started."""
    s3_port, mlflow_port, *ray_port_list = free_ports(2 + len(RAY_PORT_FLAGS))
    token_path = state_dir / "auth_token"
    token_path.write_text(secrets.token_hex(32))
    token_path.chmod(0o600)
    # Ray puts unix sockets in its temp folder; their paths must stay under ~100 bytes.
    temp_dir = tempfile.mkdtemp(prefix="mpmae-ray-", dir="/tmp")
    return {"services": {}, "ray_temp_dir": temp_dir, "token_path": str(token_path),
            "ray_ports": dict(zip(RAY_PORT_FLAGS, ray_port_list, strict=True)),
            "s3_port": s3_port, "mlflow_port": mlflow_port,
            "env": stack_env(s3_port, mlflow_port)}


def start_all(state: dict, state_dir: Path, num_cpus: int | None,
              object_store_mb: int | None) -> None:
    """Start the three services at once (they start slowly; in parallel it adds up less)."""
    logs, env, services = state_dir / "logs", state["env"], state["services"]
    services["s3"] = start_s3(state["s3_port"], logs)
    services["mlflow"] = start_mlflow(state["mlflow_port"], state_dir, env, logs)
    services["ray"] = start_ray(state["ray_ports"], Path(state["ray_temp_dir"]),
                                Path(state["token_path"]), env, num_cpus, object_store_mb,
                                logs)


def wait_all(state: dict, logs: Path, timeout_s: float) -> None:
    """Wait until each service answers; create the bucket as soon as S3 does."""
    env, services = state["env"], state["services"]
    dashboard = client_env(state)["RAY_API_SERVER_ADDRESS"]
    auth = {"Authorization": f"Bearer {Path(state['token_path']).read_text()}"}
    wait_ready({"s3": (services["s3"], lambda: answers(env["AWS_ENDPOINT_URL"]))},
               logs, timeout_s)
    # MLflow looks for its artifact bucket when it first stores one, not at start.
    create_bucket(env["AWS_ENDPOINT_URL"])
    wait_ready({
        "mlflow": (services["mlflow"],
                   lambda: answers(f"{env['MLFLOW_TRACKING_URI']}/health")),
        "ray": (services["ray"], lambda: answers(f"{dashboard}/api/version", auth)),
    }, logs, timeout_s)


def up(state_dir: Path, num_cpus: int | None = None, object_store_mb: int | None = None,
       timeout_s: float = 90) -> dict:
    """Start the three services, wait until each answers, record them; returns the state."""
    previous = read_state(state_dir)
    if previous and running_services(previous):
        raise StackError(f"a stack from {state_dir} is running; `stack.py down` first")
    (state_dir / "logs").mkdir(parents=True, exist_ok=True)
    state = new_state(state_dir)
    try:
        start_all(state, state_dir, num_cpus, object_store_mb)
        wait_all(state, state_dir / "logs", timeout_s)
    except BaseException:
        _stop_services(state)
        shutil.rmtree(state["ray_temp_dir"], ignore_errors=True)
        raise
    _write_state(state_dir, state)
    return state


def _write_state(state_dir: Path, state: dict) -> None:
    serialisable = {**state, "services": {k: asdict(v) for k, v in state["services"].items()}}
    (state_dir / "stack.json").write_text(json.dumps(serialisable, indent=2))
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in client_env(state).items())
    (state_dir / "env.sh").write_text(exports)


def _stop_services(state: dict) -> set[Proc]:
    """Stop Ray first (its jobs may still log to MLflow and S3), then MLflow, then S3."""
    survivors: set[Proc] = set()
    for name in ("ray", "mlflow", "s3"):
        leader = state["services"].get(name)
        if leader is None or not is_running(leader):
            continue
        found = descendants(leader.pid)
        if name != "ray":
            survivors |= terminate({leader} | identify_all(found))
            continue
        # Ray's workers start sessions of their own; they all name the temp folder. The
        # `ray start --block` leader shuts its node down itself when asked first.
        found |= naming(state["ray_temp_dir"])
        survivors |= stop(leader, identify_all(found))
    return survivors


def down(state_dir: Path) -> None:
    """Stop exactly the processes ``up`` recorded in ``state_dir``, then forget them."""
    state = read_state(state_dir)
    if state is None:
        raise StackError(f"no stack recorded in {state_dir}")
    survivors = _stop_services(state)
    if survivors:
        pids = " ".join(str(p.pid) for p in survivors)
        raise StackError(f"these processes did not stop: {pids}; stop them with kill -9")
    shutil.rmtree(state["ray_temp_dir"], ignore_errors=True)
    for name in ("stack.json", "env.sh", "auth_token", "mlflow.db"):
        (state_dir / name).unlink(missing_ok=True)


def _print_up(state: dict, state_dir: Path) -> None:
    env = client_env(state)
    print(f"S3 (moto):  {env['AWS_ENDPOINT_URL']}  bucket s3://{BUCKET}")
    print(f"MLflow:     {env['MLFLOW_TRACKING_URI']}")
    print(f"Ray:        {env['RAY_ADDRESS']} (dashboard and Job API "
          f"{env['RAY_API_SERVER_ADDRESS']}, token in {env['RAY_AUTH_TOKEN_PATH']})")
    print(f"\nUse it from a shell (also in {state_dir / 'env.sh'}):")
    for name, value in env.items():
        print(f"export {name}={shlex.quote(value)}")
    print(f"\nStop it: python infra/local/stack.py down --state-dir {state_dir}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("verb", choices=["up", "down"])
    parser.add_argument("--state-dir", type=Path, default=cache_dir() / "stack")
    parser.add_argument("--num-cpus", type=int, default=None,
                        help="CPUs the Ray head offers (default: all)")
    parser.add_argument("--object-store-mb", type=int, default=None,
                        help="Ray object store size (default: Ray's, 30%% of memory)")
    args = parser.parse_args(argv)
    state_dir = args.state_dir.expanduser().resolve()
    try:
        if args.verb == "up":
            _print_up(up(state_dir, args.num_cpus, args.object_store_mb), state_dir)
        else:
            down(state_dir)
            print(f"stopped the stack recorded in {state_dir}")
    except StackError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
