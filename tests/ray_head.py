"""A private Ray cluster for tests on this machine: a head (own temp dir, own free ports,
own token) and, joining it, worker nodes (:func:`ray_nodes`): further raylets, each with
its own temp dir, ports and small object store (:func:`multinode_cluster` puts the two
together). All stopped by pid.

`ray stop`, forced or not, would stop every Ray process of the user, including a
cluster they are working with, so the head and the nodes started here are shut down by the
pids of the processes they spawned and nothing else.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

# The by-pid process handling and port picking of infra/local (scripts, not a package).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "infra" / "local"))
import pids
from stack import free_ports

# The ports every node opens; the head opens three more.
NODE_PORT_FLAGS = (
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--runtime-env-agent-port",
    "--metrics-export-port",
    "--node-manager-port",
    "--object-manager-port",
)
PORT_FLAGS = ("--port", "--dashboard-port", "--ray-client-server-port", *NODE_PORT_FLAGS)
OBJECT_STORE_BYTES = 100_000_000  # per node: several nodes share this machine's memory
NODE_LABEL = "mpmae-test-node"  # each node's label: its temp dir's name, to find it by


@dataclass(frozen=True)
class RayHead:
    """A running head: where its Job API listens and the token it demands."""

    address: str
    token: str
    temp_dir: Path
    gcs_address: str  # what `ray.init(address=...)` on this machine would attach to

    @property
    def token_file(self) -> Path:
        return self.temp_dir / "auth_token"

    def client_env(self) -> dict[str, str]:
        """The environment of a driver process that joins this cluster (its token, no
        other Ray settings of the user's)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(self.token_file))
        return env

    def alive_nodes(self) -> list[dict]:
        """The state API's record of each alive node (node_id, labels, resources_total…)."""
        request = urllib.request.Request(
            f"{self.address}/api/v0/nodes?limit=100&detail=1",
            headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            nodes = json.load(answer)["data"]["result"]["result"]
        return [n for n in nodes if n["state"] == "ALIVE"]


@contextmanager
def ray_head(timeout_s: float = 60, num_cpus: int = 1,
             system_config: dict | None = None) -> Iterator[RayHead]:
    """Start `ray start --head --block` with token auth on; stop exactly its processes.
    ``system_config``: Ray's internal settings for the whole cluster (the head holds them)."""
    # Ray puts unix sockets under the temp dir; their paths must stay under ~100 bytes.
    temp_dir = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))
    token = secrets.token_hex(32)
    token_file = temp_dir / "auth_token"
    token_file.write_text(token)
    ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS)), strict=True))
    address = f"http://127.0.0.1:{ports['--dashboard-port']}"
    proc = subprocess.Popen(
        _command(temp_dir, ports, num_cpus, system_config),
        env=_head_env(token_file),
        stdout=(temp_dir / "head.out").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_ready(proc, address, token, temp_dir, timeout_s)
        # Jobs go through the head's dashboard agent, which may come up after the Job API.
        _wait_listening(ports["--dashboard-agent-listen-port"], timeout_s)
        yield RayHead(address, token, temp_dir, f"127.0.0.1:{ports['--port']}")
    finally:
        _stop(proc, temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _command(temp_dir: Path, ports: dict[str, int], num_cpus: int,
             system_config: dict | None) -> list[str]:
    extra = [f"--system-config={json.dumps(system_config)}"] if system_config else []
    return [
        *_start(temp_dir, ports, num_cpus), "--head", "--dashboard-host=127.0.0.1",
        "--include-dashboard=true", *extra,
    ]


def _start(temp_dir: Path, ports: dict[str, int], num_cpus: int) -> list[str]:
    """What a head and a worker node are started with alike."""
    ray = str(Path(sys.executable).with_name("ray"))
    return [
        ray, "start", "--block", *(f"{flag}={port}" for flag, port in ports.items()),
        f"--num-cpus={num_cpus}", f"--object-store-memory={OBJECT_STORE_BYTES}",
        "--include-log-monitor=false", f"--temp-dir={temp_dir}", "--disable-usage-stats",
        f"--labels={json.dumps({NODE_LABEL: temp_dir.name})}",
    ]


def _head_env(token_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "AWS_"))}
    # Token auth on explicitly, with a token of our own rather than the user's ~/.ray one.
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_file),
               RAY_USAGE_STATS_ENABLED="0")
    # Job entrypoints say `python`: make that this interpreter.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _wait_ready(proc: subprocess.Popen, address: str, token: str, temp_dir: Path,
                timeout_s: float) -> None:
    """Wait until the Job API answers an authenticated request."""
    deadline = time.monotonic() + timeout_s
    request = urllib.request.Request(f"{address}/api/jobs/",
                                     headers={"Authorization": f"Bearer {token}"})
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited: {(temp_dir / 'head.out').read_text()}")
        try:
            with urllib.request.urlopen(request, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise TimeoutError(f"Ray head did not come up in {timeout_s}s; see {temp_dir}/head.out")


def _wait_listening(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"nothing listens on port {port} after {timeout_s}s")


def _stop(proc: subprocess.Popen, temp_dir: Path) -> None:
    """Stop the head (by pid) and anything still naming its temp dir: the same by-pid,
    start-time-checked shutdown the local stack script uses."""
    others = pids.identify_all(pids.descendants(proc.pid) | pids.naming(str(temp_dir)))
    leader = pids.identify(proc.pid)
    if leader is not None:  # --block: ray start shuts down what it started on SIGTERM
        pids.stop(leader, others)
    pids.terminate(pids.identify_all(pids.naming(str(temp_dir))))
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)  # reap it


@dataclass(frozen=True)
class RayNode:
    """A worker node that joined a :class:`RayHead`: its Ray node id and its raylet."""

    node_id: str
    raylet: pids.Proc
    temp_dir: Path

    def kill(self) -> None:
        """SIGKILL the node's raylet, as when its machine goes away: the node's workers
        lose their raylet and exit, and the head marks the node dead once its health
        checks fail."""
        if pids.is_running(self.raylet):
            os.kill(self.raylet.pid, signal.SIGKILL)


@contextmanager
def ray_nodes(head: RayHead, count: int = 1, num_cpus: int = 1,
              resources: dict[str, float] | None = None,
              timeout_s: float = 60) -> Iterator[list[RayNode]]:
    """``count`` worker nodes joining ``head`` (`ray start --address … --block`, the head's
    token), each with ``num_cpus`` and custom ``resources``, started side by side; stop
    exactly their processes."""
    started: list[tuple[subprocess.Popen, Path]] = []
    try:
        for _ in range(count):
            started.append(_start_node(head, num_cpus, resources or {}))
        yield [RayNode(_wait_joined(head, proc, temp_dir, timeout_s),
                       _raylet(proc.pid, temp_dir), temp_dir) for proc, temp_dir in started]
    finally:
        # Side by side: each `ray start` takes seconds to shut its node down.
        with ThreadPoolExecutor(max_workers=max(1, len(started))) as pool:
            list(pool.map(lambda node: _stop(*node), started))
        for _, temp_dir in started:
            shutil.rmtree(temp_dir, ignore_errors=True)


def _start_node(head: RayHead, num_cpus: int,
                resources: dict[str, float]) -> tuple[subprocess.Popen, Path]:
    temp_dir = Path(tempfile.mkdtemp(prefix="n", dir="/tmp"))  # short: unix socket paths
    ports = dict(zip(NODE_PORT_FLAGS, free_ports(len(NODE_PORT_FLAGS)), strict=True))
    command = [*_start(temp_dir, ports, num_cpus), f"--address={head.gcs_address}",
               f"--resources={json.dumps(resources)}"]
    proc = subprocess.Popen(command, env=_head_env(head.token_file),
                            stdout=(temp_dir / "node.out").open("wb"), stderr=subprocess.STDOUT)
    return proc, temp_dir


def _wait_joined(head: RayHead, proc: subprocess.Popen, temp_dir: Path,
                 timeout_s: float) -> str:
    """The node id once the head lists the node labelled with ``temp_dir`` alive."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited: {(temp_dir / 'node.out').read_text()}")
        with suppress(urllib.error.URLError, ConnectionError, TimeoutError):
            for node in head.alive_nodes():
                if node["labels"].get(NODE_LABEL) == temp_dir.name:
                    return node["node_id"]
        time.sleep(0.5)
    raise TimeoutError(f"the node did not join in {timeout_s}s; see {temp_dir}/node.out")


def _raylet(leader: int, temp_dir: Path) -> pids.Proc:
    """The raylet among ``ray start``'s children (its command line names the node's
    temp dir and the raylet binary)."""
    for pid in pids.descendants(leader) & pids.naming(str(temp_dir)):
        with suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "raylet":
                proc = pids.identify(pid)
                if proc is not None:
                    return proc
    raise RuntimeError(f"no raylet under ray start (pid {leader}); see {temp_dir}/node.out")


# The head declares a node dead after 3 failed health checks a second apart (Ray's
# default: 5, 3 s apart), so a test that loses a node waits seconds, not a quarter minute.
FAST_NODE_LOSS = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}
TRAIN_RESOURCE = "accelerator_gpu"  # what a GPU worker node of ray-cluster.yaml offers


@dataclass
class Cluster:
    """A head and the worker nodes alive now; :meth:`replace` swaps one for a new one."""

    head: RayHead
    workers: list[RayNode]
    _stack: ExitStack

    def replace(self, node: RayNode) -> RayNode:
        """Kill ``node`` (:meth:`RayNode.kill`) and start a node like it in its place, as
        a cluster's autoscaler replaces a lost machine; the new one joins the cluster's
        own (stopped with it)."""
        node.kill()
        (new,) = self._stack.enter_context(ray_nodes(self.head, 1, resources={TRAIN_RESOURCE: 1}))
        self.workers = [new if n is node else n for n in self.workers]
        return new


@contextmanager
def multinode_cluster(workers: int = 2) -> Iterator[Cluster]:
    """A head that trains nothing (1 CPU, no :data:`TRAIN_RESOURCE`) and ``workers``
    worker nodes of 1 CPU and one :data:`TRAIN_RESOURCE` each, as a cluster of GPU
    machines has: a run with ``scaling.accelerator_resource`` set to it puts one training
    worker on each node."""
    with ExitStack() as stack:
        head = stack.enter_context(ray_head(num_cpus=1, system_config=FAST_NODE_LOSS))
        nodes = stack.enter_context(ray_nodes(head, workers, resources={TRAIN_RESOURCE: 1}))
        yield Cluster(head, nodes, stack)
