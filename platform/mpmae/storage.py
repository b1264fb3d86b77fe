"""Storage URIs → filesystems, passed explicitly to pyarrow, s3fs and Ray.

A URI is a local path, ``file://…`` or ``s3://bucket/prefix``. pyarrow ignores
``AWS_ENDPOINT_URL``, so the endpoint, region and credentials are resolved here once (from
config, else the standard AWS variables) and every consumer gets a ready filesystem.
Credentials never appear in reprs, logs or error messages.
"""

from __future__ import annotations

import os
import posixpath
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs

from mpmae.config import doc
from mpmae.errors import MpmaeError


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

    @classmethod
    def from_env(cls, **overrides: str) -> StorageOptions:
        env = {
            "endpoint_url": os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL", ""),
            "region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", ""),
            "access_key_id": os.environ.get("AWS_ACCESS_KEY_ID", ""),
            "secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
            "session_token": os.environ.get("AWS_SESSION_TOKEN", ""),
        }
        env.update({k: v for k, v in overrides.items() if v})
        return cls(**env)

    def as_env(self) -> dict[str, str]:
        """The AWS_* variables that reproduce these options in another process."""
        names = {
            "endpoint_url": "AWS_ENDPOINT_URL",
            "region": "AWS_DEFAULT_REGION",
            "access_key_id": "AWS_ACCESS_KEY_ID",
            "secret_access_key": "AWS_SECRET_ACCESS_KEY",
            "session_token": "AWS_SESSION_TOKEN",
        }
        return {names[f.name]: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}


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

    def options(self) -> StorageOptions:
        """Endpoint and region from here, credentials from the environment."""
        return StorageOptions.from_env(endpoint_url=self.endpoint_url, region=self.region)


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

    def _info(self) -> pafs.FileInfo:
        try:
            return self.fs.get_file_info(self.path)
        except OSError as e:
            raise _unreachable(self, e) from None

    def read_bytes(self) -> bytes:
        try:
            with self.fs.open_input_stream(self.path) as f:
                return f.read()
        except FileNotFoundError:
            raise PathNotFoundError(f"{self.uri} does not exist") from None
        except OSError as e:
            # Some stores report a missing object as a plain OSError: ask which it was.
            if not self.exists():
                raise PathNotFoundError(f"{self.uri} does not exist") from None
            raise _unreachable(self, e) from None

    def write_bytes_atomic(self, data: bytes) -> None:
        """Readers see the old object or the whole new one, never a partial write.

        An S3 PUT is atomic by itself; on a local disk we write a sibling temp file and
        rename it over the target.
        """
        try:
            self.fs.create_dir(posixpath.dirname(self.path) if self.is_s3 else
                               os.path.dirname(self.path), recursive=True)
            if self.is_s3:
                with self.fs.open_output_stream(self.path) as f:
                    f.write(data)
                return
            tmp = f"{self.path}.tmp-{uuid.uuid4().hex}"
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            raise _unreachable(self, e) from None

    def list_files(self, suffix: str = "") -> list[str]:
        """Paths (relative to this location) of files below it, sorted."""
        selector = pafs.FileSelector(self.path, recursive=True, allow_not_found=True)
        try:
            infos = self.fs.get_file_info(selector)
        except OSError as e:
            raise _unreachable(self, e) from None
        base = self.path.rstrip("/" if self.is_s3 else os.sep)
        rel = [
            i.path[len(base) + 1 :].replace(os.sep, "/")
            for i in infos
            if i.type == pafs.FileType.File and i.path.endswith(suffix)
        ]
        return sorted(rel)

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


def s3_filesystem(opts: StorageOptions) -> pafs.S3FileSystem:
    """A pyarrow S3 filesystem for ``opts`` (pyarrow would ignore AWS_ENDPOINT_URL)."""
    kwargs: dict = {"region": opts.region or "us-east-1"}
    if opts.endpoint_url:
        endpoint = urlparse(opts.endpoint_url)
        kwargs["endpoint_override"] = endpoint.netloc or endpoint.path
        kwargs["scheme"] = endpoint.scheme or "https"
    if opts.access_key_id:
        kwargs["access_key"] = opts.access_key_id
        kwargs["secret_key"] = opts.secret_access_key
        if opts.session_token:
            kwargs["session_token"] = opts.session_token
    return pafs.S3FileSystem(**kwargs)


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
    )


def _unreachable(loc: Location, error: OSError) -> StorageError:
    if not loc.is_s3:  # a local path: the AWS settings have nothing to do with it
        return StorageError(f"cannot access {loc.uri}: {error}. Check the path, its "
                            "permissions and the free disk space.")
    where = f" at endpoint {loc.options.endpoint_url}" if loc.options.endpoint_url else ""
    message = _scrub(str(error), loc.options)
    return StorageError(
        f"cannot access {loc.uri}{where}: {message}. Check that the store is running and "
        "that AWS_ENDPOINT_URL / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the storage "
        "section of your config) are right."
    )


def _scrub(text: str, opts: StorageOptions) -> str:
    for secret in (opts.secret_access_key, opts.session_token, opts.access_key_id):
        if secret:
            text = text.replace(secret, "***")
    return text
