"""Storage URIs → filesystems, passed explicitly to pyarrow, s3fs and Ray.

A URI is a local path, ``file://…`` or ``s3://bucket/prefix``. pyarrow ignores
``AWS_ENDPOINT_URL``, so the endpoint, region and credentials are resolved here once (from
config, else the standard AWS variables) and every consumer gets a ready filesystem.
Credentials never appear in reprs, logs or error messages.

Retries come in two layers. Inside, the AWS SDK (pyarrow's, and botocore's under s3fs) retries
each request up to ``retries`` attempts in its *standard* mode: exponential backoff with random
jitter, each wait capped at 20 s, and a retry quota that stops retrying when most requests fail.
Outside, :func:`retrying` wraps only the few operations mpmae does itself (manifest, shard and
footer reads, listings, small writes): when the SDK gave up on a *throttle* or a *server error*,
it waits (exponential backoff, full jitter) and tries the whole operation again, at most
:data:`ROUNDS` times, and counts it (:func:`retry_counts`) — the SDK does not tell us how often
it retried. An unreachable endpoint is not retried again outside, so it is reported after one
SDK round: within ``retries`` × (``timeout`` + 20 s), seconds when the port refuses at once.
Every failure is classified here once (:func:`classify`), so a throttle is never reported as
an unreachable store and a transient error never as a damaged file.
"""

from __future__ import annotations

import contextlib
import enum
import os
import posixpath
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

import pyarrow.fs as pafs

from mpmae.config import ConfigError, doc, require
from mpmae.errors import MpmaeError

T = TypeVar("T")
DEFAULT_RETRIES = 10
DEFAULT_TIMEOUT_S = 20.0
RETRIES_VARIABLE = "AWS_MAX_ATTEMPTS"  # the AWS SDKs' own name: boto3 (MLflow's) reads it too
TIMEOUT_VARIABLE = "MPMAE_S3_TIMEOUT"  # no AWS standard for it
ROUNDS = 3  # tries of a whole operation after throttling (each is one SDK round)
ROUND_BACKOFF_S = 1.0  # full jitter: the n-th wait is uniform in [0, ROUND_BACKOFF_S * 2**n]


class StorageError(MpmaeError, RuntimeError):
    """A store could not be reached or a path in it could not be read or written."""


class StorageURIError(MpmaeError, ValueError):
    """A URI names no store we can use (an unknown scheme, an s3:// URI without a bucket)."""


class PathNotFoundError(MpmaeError, FileNotFoundError):
    """Nothing exists at a URI. Readers catch it (as FileNotFoundError) to say what to do."""


@dataclass(frozen=True)
class StorageOptions:
    """Where S3 lives and how to authenticate. Empty fields fall back to AWS_* variables."""

    endpoint_url: str = ""
    region: str = ""
    access_key_id: str = field(default="", repr=False)
    secret_access_key: str = field(default="", repr=False)
    # Temporary credentials (STS, SSO, an assumed role) come as a key pair plus this token.
    session_token: str = field(default="", repr=False)
    retries: int = DEFAULT_RETRIES  # attempts per S3 request, the first included
    timeout: float = DEFAULT_TIMEOUT_S  # seconds to connect, and to wait for an answer

    def __post_init__(self) -> None:
        require(self.retries >= 1, "storage.retries", f"must be 1 or more, got {self.retries}")
        require(self.timeout > 0, "storage.timeout", f"must be above 0 s, got {self.timeout}")

    @classmethod
    def from_env(cls, **overrides: str) -> StorageOptions:
        env: dict = {
            "endpoint_url": os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL", ""),
            "region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", ""),
            "access_key_id": os.environ.get("AWS_ACCESS_KEY_ID", ""),
            "secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
            "session_token": os.environ.get("AWS_SESSION_TOKEN", ""),
        }
        env.update({k: v for k, v in overrides.items() if v})
        return cls(**env, retries=_env_number(RETRIES_VARIABLE, int, DEFAULT_RETRIES),
                   timeout=_env_number(TIMEOUT_VARIABLE, float, DEFAULT_TIMEOUT_S))

    def as_env(self) -> dict[str, str]:
        """The AWS_* variables that reproduce these options in another process."""
        names = {
            "endpoint_url": "AWS_ENDPOINT_URL",
            "region": "AWS_DEFAULT_REGION",
            "access_key_id": "AWS_ACCESS_KEY_ID",
            "secret_access_key": "AWS_SECRET_ACCESS_KEY",
            "session_token": "AWS_SESSION_TOKEN",
        }
        env = {names[f.name]: getattr(self, f.name) for f in fields(self)
               if f.name in names and getattr(self, f.name)}
        return {**env, RETRIES_VARIABLE: str(self.retries), "AWS_RETRY_MODE": "standard",
                TIMEOUT_VARIABLE: str(self.timeout)}


def _env_number(name: str, kind: type, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        value = kind(raw) if raw else default
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(f"{name} must be a number above 0, got {raw!r}")
    return value


@dataclass(frozen=True)
class StorageConfig:
    """The ``storage`` config section: where runs go. Credentials come only from
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN) in the environment, so
    they never land in a saved config or in MLflow params."""

    root: str = field(default="", metadata=doc(
        "Folder or s3:// URI for runs and checkpoints; empty: <cache>/runs"))
    endpoint_url: str = field(default="", metadata=doc(
        "S3 endpoint (MinIO, Ceph…); empty: AWS_ENDPOINT_URL, else AWS itself"))
    region: str = field(default="", metadata=doc(
        "S3 region; empty: AWS_DEFAULT_REGION, else us-east-1"))
    retries: int = field(default=0, metadata=doc(
        "Attempts per S3 request (backoff with jitter between them); raise it when the store "
        f"throttles; 0: {RETRIES_VARIABLE}, else {DEFAULT_RETRIES}"))
    timeout: float = field(default=0.0, metadata=doc(
        "Seconds to connect to S3 and to wait for each answer; 0: "
        f"{TIMEOUT_VARIABLE}, else {DEFAULT_TIMEOUT_S:g}"))

    def validate(self) -> None:
        require(self.retries >= 0, "retries", f"must be 1 or more (0: the default), got "
                f"{self.retries}")
        require(self.timeout >= 0, "timeout", f"must be above 0 s (0: the default), got "
                f"{self.timeout}")

    def options(self) -> StorageOptions:
        """Endpoint, region, retries and timeout from here, credentials from the environment."""
        opts = StorageOptions.from_env(endpoint_url=self.endpoint_url, region=self.region)
        return replace(opts, retries=self.retries or opts.retries,
                       timeout=self.timeout or opts.timeout)


@dataclass(frozen=True)
class Location:
    """A resolved URI: a pyarrow filesystem plus the path inside it (no scheme)."""

    uri: str
    fs: pafs.FileSystem
    path: str
    options: StorageOptions = field(default_factory=StorageOptions, repr=False)

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")

    def join(self, *parts: str) -> Location:
        sep = "/" if self.is_s3 else os.sep
        path = self.path.rstrip(sep) + sep + sep.join(parts) if self.path else sep.join(parts)
        return Location(posixpath.join(self.uri, *parts), self.fs, path, self.options)

    def exists(self) -> bool:
        return self._info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self._info().type == pafs.FileType.File

    def size(self) -> int | None:
        """The file's size in bytes (None: not a file)."""
        return self._info().size

    def _info(self) -> pafs.FileInfo:
        return self._checked(lambda: self.fs.get_file_info(self.path))

    def read_bytes(self) -> bytes:
        def read() -> bytes:
            with self.fs.open_input_stream(self.path) as f:
                return f.read()

        try:
            return retrying(self, read)
        except FileNotFoundError:
            raise PathNotFoundError(f"{self.uri} does not exist") from None
        except OSError as e:
            # Some stores report a missing object as a plain OSError: ask which it was.
            if not self.exists():
                raise PathNotFoundError(f"{self.uri} does not exist") from None
            raise storage_error(self, e) from None

    def write_bytes_atomic(self, data: bytes) -> None:
        """Readers see the old object or the whole new one, never a partial write.

        An S3 PUT is atomic by itself (so trying it again is safe); on a local disk we write
        a sibling temp file and rename it over the target.
        """
        if self.is_s3:
            self._checked(lambda: self._put(data))
            return
        tmp = f"{self.path}.tmp-{uuid.uuid4().hex}"
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            # A full disk leaves a partial temp file: give its space back.
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise storage_error(self, e) from None

    def _put(self, data: bytes) -> None:
        self.fs.create_dir(posixpath.dirname(self.path), recursive=True)
        with self.fs.open_output_stream(self.path) as f:
            f.write(data)

    def list_files(self, suffix: str = "") -> list[str]:
        """Paths (relative to this location) of files below it, sorted."""
        selector = pafs.FileSelector(self.path, recursive=True, allow_not_found=True)
        infos = self._checked(lambda: self.fs.get_file_info(selector))
        base = self.path.rstrip("/" if self.is_s3 else os.sep)
        rel = [
            i.path[len(base) + 1 :].replace(os.sep, "/")
            for i in infos
            if i.type == pafs.FileType.File and i.path.endswith(suffix)
        ]
        return sorted(rel)

    def _checked(self, operation: Callable[[], T]) -> T:
        """``operation`` through :func:`retrying`; any failure becomes a StorageError."""
        try:
            return retrying(self, operation)
        except OSError as e:
            raise storage_error(self, e) from None

    def download(self, folder: Path) -> Path:
        """Copy every file below this location into the local ``folder``; returns it."""
        for name in self.list_files():
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.join(*name.split("/")).read_bytes())
        return folder


def resolve(uri: str | os.PathLike, options: StorageOptions | None = None) -> Location:
    """Turn a URI or local path into a :class:`Location` with an explicit filesystem."""
    text = os.fspath(uri)
    parsed = urlparse(text)
    if parsed.scheme == "s3":
        opts = options or StorageOptions.from_env()
        if not parsed.netloc:
            raise StorageURIError(f"{text!r} has no bucket: write s3://BUCKET/PREFIX")
        path = f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
        return Location(text.rstrip("/"), s3_filesystem(opts), path, opts)
    if parsed.scheme in ("", "file") or len(parsed.scheme) == 1:  # 1 letter: a Windows drive
        local = _file_uri_path(parsed) if parsed.scheme == "file" else text
        path = str(Path(local).expanduser().resolve())
        return Location(path, pafs.LocalFileSystem(), path, options or StorageOptions())
    raise StorageURIError(f"unsupported storage URI {text!r}: use a local path, file:// or s3://")


def _file_uri_path(parsed) -> str:
    """``file:///abs`` and ``file://localhost/abs`` are absolute; ``file://runs/x`` and
    ``file:runs/x`` are taken as relative to the working folder, as people mean them
    (a strict reading would make ``runs`` a host name and drop it)."""
    if parsed.netloc in ("", "localhost"):
        return parsed.path or "."
    return parsed.netloc + parsed.path


class _S3FileSystem(pafs.S3FileSystem):
    """pyarrow's S3 filesystem, pickled as the options it was built from: pyarrow's own
    pickle drops the retry strategy, so a Ray worker (a read task, Ray Train's
    ``storage_filesystem``) would get the SDK's default of 3 attempts."""

    def __init__(self, options: StorageOptions, **kwargs) -> None:
        super().__init__(**kwargs)
        self.options = options

    def __reduce__(self):
        return s3_filesystem, (self.options,)


def s3_filesystem(opts: StorageOptions) -> pafs.S3FileSystem:
    """A pyarrow S3 filesystem for ``opts`` (pyarrow would ignore AWS_ENDPOINT_URL)."""
    kwargs: dict = {
        "region": opts.region or "us-east-1",
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=opts.retries),
        "connect_timeout": opts.timeout,
        "request_timeout": opts.timeout,
    }
    if opts.endpoint_url:
        endpoint = urlparse(opts.endpoint_url)
        kwargs["endpoint_override"] = endpoint.netloc or endpoint.path
        kwargs["scheme"] = endpoint.scheme or "https"
    if opts.access_key_id:
        kwargs["access_key"] = opts.access_key_id
        kwargs["secret_key"] = opts.secret_access_key
        if opts.session_token:
            kwargs["session_token"] = opts.session_token
    return _S3FileSystem(opts, **kwargs)


def fsspec_filesystem(loc: Location):
    """An fsspec filesystem for libraries that want one (h5py file objects, matplotlib)."""
    if not loc.is_s3:
        import fsspec

        return fsspec.filesystem("file")
    import s3fs

    opts = loc.options
    return s3fs.S3FileSystem(
        key=opts.access_key_id or None,
        secret=opts.secret_access_key or None,
        token=opts.session_token or None,
        endpoint_url=opts.endpoint_url or None,
        client_kwargs={"region_name": opts.region or "us-east-1"},
        # botocore's standard mode, as pyarrow's; total_max_attempts counts the first one.
        # s3fs keeps its own small loop around it for reads that break mid-stream.
        config_kwargs={"retries": {"total_max_attempts": opts.retries, "mode": "standard"},
                       "connect_timeout": opts.timeout, "read_timeout": opts.timeout},
    )


class Failure(enum.Enum):
    """What a failed storage operation ran into, as far as the error tells."""

    THROTTLED = "throttled"
    SERVER_ERROR = "server error"
    UNREACHABLE = "unreachable"
    NOT_FOUND = "not found"
    OTHER = "other"  # e.g. access denied, or bytes that are not what they should be


# pyarrow's AWS SDK says "AWS Error SLOW_DOWN …" (a HEAD has no body: "HTTP status 503"),
# botocore/s3fs "SlowDown", "EndpointConnectionError", "Connect timeout"…
_PATTERNS = (
    (Failure.NOT_FOUND, r"NO_SUCH_(KEY|BUCKET)|NoSuch(Key|Bucket)|HTTP status 404"),
    (Failure.THROTTLED, r"SLOW_?DOWN|SlowDown|THROTTL|Throttl|HTTP status (503|429)|"
                        r"reduce your request rate|TooManyRequests|REQUEST_LIMIT_EXCEEDED"),
    (Failure.SERVER_ERROR, r"HTTP status 5\d\d|INTERNAL_FAILURE|SERVICE_UNAVAILABLE|"
                           r"InternalError|ServiceUnavailable"),
    (Failure.UNREACHABLE, r"NETWORK_CONNECTION|curlCode|[Cc]ould not connect|"
                          r"[Cc]onnection (reset|refused|aborted|closed)|[Tt]imed? ?out|"
                          r"REQUEST_TIMEOUT|RequestTimeout|EndpointConnectionError"),
)
_AGAIN = (Failure.THROTTLED, Failure.SERVER_ERROR)  # worth a whole new SDK round


def classify(error: BaseException) -> Failure:
    """The one place that decides what a storage error means."""
    if isinstance(error, FileNotFoundError):
        return Failure.NOT_FOUND
    text = str(error)
    for failure, pattern in _PATTERNS:
        if re.search(pattern, text):
            return failure
    if isinstance(error, (ConnectionError, TimeoutError)):
        return Failure.UNREACHABLE
    return Failure.OTHER


_counts: Counter[str] = Counter()
_counts_lock = threading.Lock()


def retry_counts() -> dict[str, int]:
    """This process's operations tried again after the SDK gave up (``throttled``,
    ``server_error``) and those that failed even so (``failed``). The SDK's own retries
    inside a round are not visible to us and not counted. Log these as metrics."""
    with _counts_lock:
        return {key: _counts[key] for key in ("throttled", "server_error", "failed")}


def retries_note(since: dict[str, int]) -> str:
    """``; storage: …`` naming the retries counted after ``since`` (a :func:`retry_counts`),
    or "" when there were none."""
    now = retry_counts()
    done = {key: now[key] - since.get(key, 0) for key in now}
    if not done["throttled"] and not done["server_error"]:
        return ""
    return (f"; storage: {done['throttled']} operation(s) tried again after S3 throttling, "
            f"{done['server_error']} after server errors (raise storage.retries if this grows)")


def _count(key: str) -> None:
    with _counts_lock:
        _counts[key] += 1


def retrying(loc: Location, operation: Callable[[], T]) -> T:
    """``operation`` (one read or write of ``loc``), tried again after a throttle or server
    error the SDK gave up on, at most :data:`ROUNDS` times with jittered backoff. Raises a
    StorageError saying what happened once it gives up on a transient error; other errors
    (not found, damaged bytes) pass through unchanged for the caller to name."""
    began, round_ = time.monotonic(), 1
    while True:
        try:
            return operation()
        except OSError as e:
            failure = classify(e)
            if not loc.is_s3 or failure not in (*_AGAIN, Failure.UNREACHABLE):
                raise
            if failure is Failure.UNREACHABLE or round_ == ROUNDS:
                _count("failed")
                raise storage_error(loc, e, round_, time.monotonic() - began) from None
            _count(failure.name.lower())
            time.sleep(random.uniform(0, ROUND_BACKOFF_S * 2 ** (round_ - 1)))
        round_ += 1


def storage_error(loc: Location, error: OSError, rounds: int = 1,
                  seconds: float | None = None) -> StorageError:
    """The StorageError for ``error`` on ``loc`` after ``rounds`` SDK rounds that took
    ``seconds``: what happened and what to do, on one line."""
    if not loc.is_s3:  # a local path: the AWS settings have nothing to do with it
        return StorageError(f"cannot access {loc.uri}: {error}. Check the path, its "
                            "permissions and the free disk space.")
    opts = loc.options
    message = _scrub(" ".join(str(error).split()), opts)
    failure = classify(error)
    tried = f"after up to {rounds * opts.retries} attempt(s)" + (
        f" over {seconds:.1f} s" if seconds is not None else "")
    endpoint = opts.endpoint_url or "AWS S3"
    if failure is Failure.THROTTLED:
        return StorageError(
            f"S3 throttled requests for {loc.uri} ({_status(message)}) {tried}: the store "
            "limits the request rate; raise storage.retries (or AWS_MAX_ATTEMPTS) or lower "
            f"the request rate (fewer workers) and run again. [{message}]")
    if failure is Failure.SERVER_ERROR:
        return StorageError(
            f"the S3 endpoint {endpoint} failed to serve {loc.uri} {tried}: its own error, "
            f"not your data; run again later or check the store. [{message}]")
    if failure is Failure.UNREACHABLE:
        return StorageError(
            f"cannot reach {loc.uri}: the S3 endpoint {endpoint} did not answer {tried} "
            f"({message}). Check that the store is running and that AWS_ENDPOINT_URL (or "
            "storage.endpoint_url) is right; storage.timeout sets how long each attempt waits.")
    where = f" at endpoint {opts.endpoint_url}" if opts.endpoint_url else ""
    return StorageError(
        f"cannot access {loc.uri}{where}: {message}. Check that the store is running and "
        "that AWS_ENDPOINT_URL / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the storage "
        "section of your config) are right."
    )


def _status(message: str) -> str:
    """How the store said it: "503 SlowDown", "HTTP 429"… (a HEAD's answer has no body)."""
    if re.search(r"SLOW_?DOWN|SlowDown", message):
        return "503 SlowDown"
    status = re.search(r"HTTP status (\d+)", message)
    if status:
        return f"HTTP {status.group(1)}"
    found = re.search(r"THROTTL\w*|Throttl\w*|TooManyRequests", message)
    return found.group(0) if found else "throttling"


def _scrub(text: str, opts: StorageOptions) -> str:
    for secret in (opts.secret_access_key, opts.session_token, opts.access_key_id):
        if secret:
            text = text.replace(secret, "***")
    return text
