"""`mpmae submit`: run `mpmae <verb> ARGS` on a Ray cluster as a Ray Job.

The job runs ``python jobs/<verb>.py ARGS`` in an uploaded copy of the project folder, minus
what ``.gitignore``/``.rayignore`` and :data:`ALWAYS_EXCLUDED` name. The package itself also
travels as a ``py_modules`` entry, so the driver and every Ray worker import the code that
was submitted rather than whatever the cluster image holds (the image supplies torch, ray…).
The MLflow, S3 and MPMAE_HOME variables of the user's environment go into the job's
environment; only their names are printed, and known secret values are masked in anything
echoed back (errors, streamed logs).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from mpmae.errors import MpmaeError
from mpmae.ray_auth import ClusterToken, find_token

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

FORWARDED_ENV = (
    "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN", "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "MPMAE_HOME",
)
SECRET_ENV = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "AWS_ACCESS_KEY_ID",
              "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
# Never worth uploading, whatever the ignore files say: environments, VCS data, caches, local
# tracking databases (large, machine-specific, and the cluster has its own).
ALWAYS_EXCLUDED = (".git/", ".venv/", "venv/", "__pycache__/", "*.pyc", ".pytest_cache/",
                   ".ruff_cache/", "*.egg-info/", "mlruns/", "mlflow.db*", ".mpmae/")
IGNORE_FILES = (".gitignore", ".rayignore")
EXIT_CODES = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": 1}
DEFAULT_ADDRESS = "http://127.0.0.1:8265"


class SubmitError(MpmaeError, RuntimeError):
    """The job could not be submitted or followed; the message says what to do."""


def submit(
    address: str,
    argv: list[str],
    *,
    working_dir: str = ".",
    wait: bool = True,
    token: str | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Submit ``mpmae *argv`` to the Job API at ``address``; with ``wait``, stream its logs
    and return 0 if it succeeded, else 1. ``env`` is the user's environment (default:
    ``os.environ``) from which MLflow/S3 variables and the Ray token are taken."""
    env = os.environ if env is None else env
    address = normalise_address(address)
    root = Path(working_dir).expanduser().resolve()
    entrypoint = entrypoint_for(root, argv)
    runtime_env = build_runtime_env(root, env)
    cluster_token = find_token(token, env)
    secrets = [env[k] for k in SECRET_ENV if env.get(k)] + [cluster_token.value or ""]
    client = _connect(address, cluster_token)
    print(f"Submitting `mpmae {shlex.join(argv)}` to {address}")
    print(f"  working dir: {root}")
    print(f"  environment passed on: {', '.join(runtime_env['env_vars']) or '(none)'}")
    note = tracking_note(env.get("MLFLOW_TRACKING_URI", ""), address)
    if note:
        print(f"  note: {note}")
    with _ray_info_logs_off():
        try:
            job_id = client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env,
                                       metadata={"mpmae_verb": argv[0]})
        except (RuntimeError, ValueError) as e:
            raise SubmitError(f"submitting the job failed: {_mask(str(e), secrets)}") from None
        _print_hints(address, job_id, cluster_token)
        return follow(client, job_id, secrets) if wait else 0


def default_address(explicit: str | None, env: Mapping[str, str]) -> str:
    """--address, else $RAY_API_SERVER_ADDRESS, else an http $RAY_ADDRESS, else local.

    RAY_ADDRESS often holds a GCS address (HEAD:6379) or "auto", which the Job API is not.
    """
    ray_address = env.get("RAY_ADDRESS", "")
    if not ray_address.startswith(("http://", "https://")):
        ray_address = ""
    return explicit or env.get("RAY_API_SERVER_ADDRESS") or ray_address or DEFAULT_ADDRESS


def normalise_address(address: str) -> str:
    """``HEAD:8265`` → ``http://HEAD:8265``; reject Ray client/GCS addresses with a hint."""
    address = address.strip().rstrip("/")
    if "://" not in address:
        address = f"http://{address}"
    parsed = urlparse(address)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise SubmitError(
            f"{address!r} is not a Job API address: use the dashboard's HTTP address, "
            f"e.g. {DEFAULT_ADDRESS} or http://HEAD:8265"
        )
    return address


def tracking_note(tracking_uri: str, address: str) -> str | None:
    """A warning when the job's MLflow runs would land somewhere the user cannot see."""
    if not tracking_uri:
        return ("MLFLOW_TRACKING_URI is not set: the job tracks into a SQLite file on the "
                "cluster (<cache>/mlflow.db there). Set it to your MLflow server's URL.")
    local = urlparse(tracking_uri).scheme in ("", "file", "sqlite")
    if local and urlparse(address).hostname not in ("127.0.0.1", "localhost", "::1"):
        return (f"MLFLOW_TRACKING_URI={tracking_uri} is a local store the cluster cannot "
                "share with you; point it at an MLflow server reachable from the cluster.")
    return None


def entrypoint_for(root: Path, argv: list[str]) -> str:
    """The shell command the job runs: ``python jobs/<verb>.py ARGS`` (paths as uploaded)."""
    if not argv:
        raise SubmitError("name a verb to run, e.g. `mpmae submit --address "
                          f"{DEFAULT_ADDRESS} pretrain --config jobs/configs/demo.yaml`")
    verb, *args = argv
    if not (root / "jobs" / f"{verb}.py").is_file():
        known = sorted(p.stem for p in (root / "jobs").glob("*.py"))
        raise SubmitError(
            f"there is no jobs/{verb}.py in {root}; verbs that can be submitted from there: "
            f"{', '.join(known) or 'none'}. Run from the project folder or pass --working-dir."
        )
    return shlex.join(["python", f"jobs/{verb}.py", *args])


def build_runtime_env(root: Path, env: Mapping[str, str]) -> dict:
    """Ray runtime_env: the project upload, the package as a module, forwarded variables."""
    runtime_env: dict = {
        "working_dir": str(root),
        "excludes": upload_excludes(root),
        "env_vars": {k: env[k] for k in FORWARDED_ENV if env.get(k)},
    }
    package = root / "platform" / "mpmae"
    if (package / "__init__.py").is_file():
        runtime_env["py_modules"] = [str(package)]
    return runtime_env


def upload_excludes(root: Path) -> list[str]:
    """Gitignore-style patterns: :data:`ALWAYS_EXCLUDED` plus the root's ignore files."""
    patterns = list(ALWAYS_EXCLUDED)
    for name in IGNORE_FILES:
        path = root / name
        if path.is_file():
            lines = (line.strip() for line in path.read_text().splitlines())
            patterns += [line for line in lines if line and not line.startswith("#")]
    return list(dict.fromkeys(patterns))


def follow(client: JobSubmissionClient, job_id: str, secrets: list[str]) -> int:
    """Stream the job's logs until it ends; its final status as an exit code."""
    try:
        asyncio.run(_stream_logs(client, job_id, secrets))
    except KeyboardInterrupt:
        print(f"\nStopped following; job {job_id} keeps running on the cluster.",
              file=sys.stderr)
        return 130
    except RuntimeError as e:
        print(f"Log stream ended early ({_mask(str(e), secrets)}); waiting for the job.",
              file=sys.stderr)
    status = _wait_until_done(client, job_id)
    if status == "SUCCEEDED":
        print(f"Job {job_id} SUCCEEDED")
        return 0
    # Ray appends the driver's last logs to the message; they were just streamed.
    message = (client.get_job_info(job_id).message or "").split(", last available logs")[0]
    print(f"Job {job_id} {status}: {_mask(message, secrets)}")
    return EXIT_CODES[status]


async def _stream_logs(client: JobSubmissionClient, job_id: str, secrets: list[str]) -> None:
    async for chunk in client.tail_job_logs(job_id):
        sys.stdout.write(_mask(chunk, secrets))
        sys.stdout.flush()


def _wait_until_done(client: JobSubmissionClient, job_id: str, poll_s: float = 1.0) -> str:
    while (status := str(client.get_job_status(job_id).value)) not in EXIT_CODES:
        time.sleep(poll_s)
    return status


def _connect(address: str, token: ClusterToken) -> JobSubmissionClient:
    """A JobSubmissionClient that has passed Ray's version check (an authenticated call)."""
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    _check_reachable(address)
    try:
        return JobSubmissionClient(address, headers=token.headers())
    except AuthenticationError:
        raise SubmitError(_auth_advice(address, token)) from None
    except ConnectionError:
        raise SubmitError(_unreachable(address, "it did not answer")) from None


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    # Ray's client sets no timeout: a firewalled address would hang instead of failing.
    parsed = urlparse(address)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout_s).close()
    except OSError as e:
        raise SubmitError(_unreachable(address, e.strerror or str(e))) from None


def _unreachable(address: str, why: str) -> str:
    return (
        f"cannot reach the Ray Job API at {address} ({why}). Check that the Ray head is "
        "running with its dashboard on that host and port (ray start --head "
        "--dashboard-host=0.0.0.0 serves it on 8265), or forward the port (e.g. kubectl "
        "port-forward svc/HEAD-svc 8265:8265), then retry with --address."
    )


def _auth_advice(address: str, token: ClusterToken) -> str:
    where = ("Get the token on the head with `ray get-auth-token` and pass it with --token, "
             "RAY_AUTH_TOKEN or a file at RAY_AUTH_TOKEN_PATH / ~/.ray/auth_token.")
    if token.value is None:
        return (f"the cluster at {address} requires an authentication token and none was "
                f"found (looked at {token.source}). {where}")
    return f"the cluster at {address} rejected the token from {token.source}. {where}"


def _print_hints(address: str, job_id: str, token: ClusterToken) -> None:
    ray = "RAY_AUTH_MODE=token ray" if token.value else "ray"
    print(f"Job submitted: {job_id}")
    print(f"  follow its logs: {ray} job logs --address {address} --follow {job_id}")
    print(f"  dashboard:       {address}/#/jobs/{job_id}")
    print(f"  stop it:         {ray} job stop --address {address} {job_id}")
    if token.source == "--token":
        print("  (the ray CLI reads the token from RAY_AUTH_TOKEN or ~/.ray/auth_token)")


@contextmanager
def _ray_info_logs_off() -> Iterator[None]:
    # Ray logs every packaging step at INFO; keep its warnings, drop the chatter.
    ray_logger = logging.getLogger("ray")
    level = ray_logger.level
    ray_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        ray_logger.setLevel(level)


def _mask(text: str, secrets: list[str]) -> str:
    for secret in filter(None, secrets):
        text = text.replace(secret, "***")
    return text


def add_submit_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``submit`` verb to ``mpmae``'s sub-parsers; its handler is :func:`run_submit`."""
    p = subparsers.add_parser(
        "submit", help="run an mpmae verb on a Ray cluster as a Ray Job",
        description="Submit `mpmae VERB ARGS` (e.g. pretrain --config FILE) as a Ray Job. "
                    "Options for submit go before the verb.")
    p.add_argument("--address", default=None,
                   help="Job API (dashboard) address, e.g. http://HEAD:8265; default: "
                        f"$RAY_API_SERVER_ADDRESS, an http:// $RAY_ADDRESS, else {DEFAULT_ADDRESS}")
    p.add_argument("--working-dir", default=".",
                   help="project folder to upload (default: the current folder)")
    p.add_argument("--no-wait", dest="wait", action="store_false",
                   help="print the job id and how to follow it, then return")
    p.add_argument("--token", default=None,
                   help="Ray auth token (visible in the process list; prefer RAY_AUTH_TOKEN "
                        "or ~/.ray/auth_token)")
    p.add_argument("verb", help="the mpmae verb to run on the cluster (pretrain, tune, evaluate)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the verb")
    p.set_defaults(func=run_submit)
    return p


def run_submit(args: argparse.Namespace) -> int:
    """Handler of ``mpmae submit``: the job's final status as the exit code."""
    address = default_address(args.address, os.environ)
    return submit(address, [args.verb, *args.args], working_dir=args.working_dir,
                  wait=args.wait, token=args.token)
