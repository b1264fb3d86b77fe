"""Run `mpmae <verb> ARGS` on a Ray cluster as a Ray Job: what `mpmae submit` calls once
:mod:`mpmae.cli` has parsed its flags.

The job runs ``python jobs/<verb>.py ARGS`` in an uploaded copy of the project folder
(:mod:`mpmae.cluster.upload` says what is left out), sent to the cluster's Job API with its
token (:mod:`mpmae.cluster.auth`). The package itself also travels as a ``py_modules``
entry, so the driver and every Ray worker import the code that was submitted rather than
whatever the cluster image holds (the image supplies torch, ray…).

Ray keeps a job's ``runtime_env`` in its job table, shows it on the dashboard and in
``GET /api/jobs/``, and logs it on every node. So only non-secret settings go into it (the
MLflow URL without its password, the S3 endpoint and region, MPMAE_HOME); the cluster gets
credentials its own way (docs/cluster.md, "Credentials on the cluster"). ``--forward-
secrets`` copies them anyway, for a private dev cluster, with a warning.
"""

from __future__ import annotations

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

from mpmae.cluster.auth import ClusterToken, find_token
from mpmae.cluster.upload import DEFAULT_MAX_UPLOAD_MB, check_size, plan_upload, upload_excludes
from mpmae.errors import MpmaeError
from mpmae.redact import has_credentials, redact_text, without_credentials

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

# Settings the job needs and anyone may see.
PASSED_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_S3_ENDPOINT_URL",
              "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION",
              "AWS_MAX_ATTEMPTS", "MPMAE_S3_TIMEOUT", "MPMAE_HOME")
# Credentials: withheld unless --forward-secrets.
SECRET_ENV = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "AWS_ACCESS_KEY_ID",
              "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
CREDENTIALS_DOC = 'docs/cluster.md, "Credentials on the cluster"'
EXIT_CODES = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": 1}
OUR_PREFIX = "mpmae: "  # how a verb's one-line error (exit 2) or preemption (75) begins
PASSED_ON_CODES = (2, 75)  # a job's exit codes submit exits with: automation tells them apart
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
    forward_secrets: bool = False,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
) -> int:
    """Submit ``mpmae *argv`` to the Job API at ``address``; with ``wait``, stream its logs
    and return 0 if it succeeded, else 1. ``env`` is the user's environment (default:
    ``os.environ``) from which MLflow/S3 variables and the Ray token are taken; credentials
    in it go to the job only with ``forward_secrets``."""
    env = os.environ if env is None else env
    address = normalise_address(address)
    root = Path(working_dir).expanduser().resolve()
    if not forward_secrets:
        _refuse_credentials_in(argv)
    entrypoint = entrypoint_for(root, argv)
    upload = plan_upload(root)
    if upload:
        check_size(upload, max_upload_mb)
    runtime_env = build_runtime_env(root, env, forward_secrets,
                                    list(upload.excludes) if upload else None)
    cluster_token = find_token(token, env)
    secrets = [env[k] for k in SECRET_ENV if env.get(k)] + [cluster_token.value or ""]
    client = _job_client(address, cluster_token)
    print(f"Submitting `mpmae {redact_text(shlex.join(argv))}` to {address}")
    measured = f"uploading {upload.summary()}" if upload else "upload not measured"
    print(f"  working dir: {root} ({measured})")
    print(f"  environment passed on: {', '.join(runtime_env['env_vars']) or '(none)'}")
    _print_secret_handling(env, forward_secrets)
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


def build_runtime_env(root: Path, env: Mapping[str, str], forward_secrets: bool = False,
                      excludes: list[str] | None = None) -> dict:
    """Ray runtime_env: the project upload, the package as a module, the job's variables
    (:func:`job_env`)."""
    runtime_env: dict = {
        "working_dir": str(root),
        "excludes": upload_excludes(root) if excludes is None else excludes,
        "env_vars": job_env(env, forward_secrets),
    }
    package = root / "platform" / "mpmae"
    if (package / "__init__.py").is_file():
        runtime_env["py_modules"] = [str(package)]
    return runtime_env


def job_env(env: Mapping[str, str], forward_secrets: bool) -> dict[str, str]:
    """The variables the job gets: :data:`PASSED_ENV` (the tracking URI without its
    password), plus :data:`SECRET_ENV` and the full URI with ``forward_secrets``."""
    names = PASSED_ENV + SECRET_ENV if forward_secrets else PASSED_ENV
    passed = {k: env[k] for k in names if env.get(k)}
    if not forward_secrets and "MLFLOW_TRACKING_URI" in passed:
        passed["MLFLOW_TRACKING_URI"] = without_credentials(passed["MLFLOW_TRACKING_URI"])
    return passed


def _refuse_credentials_in(argv: list[str]) -> None:
    # The entrypoint is stored and shown like the runtime_env.
    for arg in argv:
        if has_credentials(arg):
            raise SubmitError(
                f"the argument {redact_text(arg)!r} holds a password, which Ray would store "
                "in its job table and show on the dashboard: give the cluster the "
                f"credentials instead ({CREDENTIALS_DOC}), or pass --forward-secrets on a "
                "private dev cluster")


def _print_secret_handling(env: Mapping[str, str], forward_secrets: bool) -> None:
    held = [k for k in SECRET_ENV if env.get(k)]
    if has_credentials(env.get("MLFLOW_TRACKING_URI", "")):
        held.append("the password in MLFLOW_TRACKING_URI")
    if not held:
        return
    if forward_secrets:
        print(f"  WARNING: --forward-secrets copies {', '.join(held)} into the job's "
              "runtime_env: Ray stores it in its job table and shows it on the dashboard and "
              "in GET /api/jobs/ to anyone who can reach the cluster. Use it on a private "
              "dev cluster only.")
        return
    print(f"  withheld (secrets): {', '.join(held)}. The cluster must supply its own "
          f"credentials ({CREDENTIALS_DOC}); --forward-secrets sends yours (private dev "
          "clusters only).")


def follow(client: JobSubmissionClient, job_id: str, secrets: list[str]) -> int:
    """Stream the job's logs until it ends; its final status as an exit code. A job whose
    verb stopped with one line of ours (exit 2) or was preempted (75) ends with that line
    again, last, and submit exits with its code: a wrapper that resubmits preempted jobs
    can tell them from failures."""
    ours = OurLastLine()
    try:
        asyncio.run(_stream_logs(client, job_id, secrets, ours))
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
    info = client.get_job_info(job_id)
    # Ray appends the driver's last logs to the message; they were just streamed.
    message = (info.message or "").split(", last available logs")[0]
    sys.stdout.flush()  # the job's log first: what follows is the verdict, on stderr
    print(f"Job {job_id} {status}: {_mask(message, secrets)}", file=sys.stderr)
    code = info.driver_exit_code
    if status == "FAILED" and code in PASSED_ON_CODES and ours.line:
        print(ours.line, file=sys.stderr)
        return code
    return EXIT_CODES[status]


class OurLastLine:
    """The last line of ours (``mpmae: …``) in a job's log, fed as it streams in chunks
    that may split lines."""

    def __init__(self) -> None:
        self._line, self._partial = "", ""

    def feed(self, chunk: str) -> None:
        *lines, self._partial = (self._partial + chunk).split("\n")
        self._line = next((ln for ln in reversed(lines) if ln.startswith(OUR_PREFIX)),
                          self._line)

    @property
    def line(self) -> str:
        return self._partial if self._partial.startswith(OUR_PREFIX) else self._line


async def _stream_logs(client: JobSubmissionClient, job_id: str, secrets: list[str],
                       ours: OurLastLine) -> None:
    async for chunk in client.tail_job_logs(job_id):
        masked = _mask(chunk, secrets)
        ours.feed(masked)
        sys.stdout.write(masked)
        sys.stdout.flush()


def _wait_until_done(client: JobSubmissionClient, job_id: str, poll_s: float = 1.0) -> str:
    while (status := str(client.get_job_status(job_id).value)) not in EXIT_CODES:
        time.sleep(poll_s)
    return status


def _job_client(address: str, token: ClusterToken) -> JobSubmissionClient:
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
    return redact_text(text)

