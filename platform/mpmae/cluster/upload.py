"""What `mpmae submit` uploads: the project folder minus environments, keys and data.

Ray stores the uploaded folder in its GCS and unpacks it on every node, so nothing private
or large belongs in it: key and environment files, datasets and run folders are excluded
whatever the ignore files say, and the listing is measured before anything is sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from mpmae.errors import MpmaeError
from mpmae.ray_fixes.upload_walk import ray_walker

# Never worth uploading: environments, VCS data, caches, local tracking databases (large,
# machine-specific, and the cluster has its own).
LOCAL_STATE = (".git/", ".venv/", "venv/", "__pycache__/", "*.pyc", ".pytest_cache/",
               ".ruff_cache/", "*.egg-info/", "mlruns/", "mlflow.db*", ".mpmae/")
# Credentials: dotenv files, cloud and SSH key folders, private keys.
KEY_FILES = (".env", "*.env", ".env.*", ".aws/", ".ssh/", ".netrc", "*.pem", "*.key",
             "id_rsa*", "id_ed25519*", "*.p12", "*.pfx", "credentials.json")
# Data and weights: datasets, checkpoints and releases live in storage, not in the code.
DATA_FILES = ("*.parquet", "*.h5", "*.hdf5", "*.tif", "*.tiff", "*.npy", "*.npz", "*.pt",
              "*.pth", "*.ckpt", "*.safetensors", "*.pkl")
ALWAYS_EXCLUDED = LOCAL_STATE + KEY_FILES + DATA_FILES
# A folder holding one of these is an mpmae dataset or run folder: excluded whole.
FOLDER_MARKERS = ("dataset.json", "run.json")
IGNORE_FILES = (".gitignore", ".rayignore")
DEFAULT_MAX_UPLOAD_MB = 100.0
MIB = 1024 * 1024


class UploadTooLargeError(MpmaeError, ValueError):
    """The upload is larger than --max-upload-mb."""


@dataclass(frozen=True)
class Upload:
    """The files Ray will upload (relative paths and sizes) and the patterns that keep the
    rest out."""

    files: tuple[tuple[str, int], ...]
    excludes: tuple[str, ...]

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)

    def summary(self) -> str:
        return f"{len(self.files)} files, {self.total_bytes / MIB:.1f} MiB"

    def largest(self, n: int = 5) -> list[tuple[str, int]]:
        return sorted(self.files, key=lambda f: -f[1])[:n]


def upload_excludes(root: Path) -> list[str]:
    """Gitignore-style patterns: :data:`ALWAYS_EXCLUDED`, the root's ignore files, and the
    dataset and run folders found below the root."""
    patterns = list(ALWAYS_EXCLUDED)
    for name in IGNORE_FILES:
        path = root / name
        if path.is_file():
            lines = (line.strip() for line in path.read_text().splitlines())
            patterns += [line for line in lines if line and not line.startswith("#")]
    walker = ray_walker()
    if walker:
        patterns += _marked_folders(root, patterns, walker.path_spec)
    return list(dict.fromkeys(patterns))


def plan_upload(root: Path) -> Upload | None:
    """Walk ``root`` exactly as Ray's packaging will (its own matcher and ignore files);
    None where this Ray no longer has the helpers to do so."""
    walker = ray_walker()
    if walker is None:
        return None
    excludes = upload_excludes(root)
    files: list[tuple[str, int]] = []

    def record(path: Path) -> None:
        if path.is_file():
            files.append((path.relative_to(root).as_posix(), path.stat().st_size))

    # Ray's walker logs each ignore file it reads at INFO on the logger given: not ours.
    walker.dir_travel(root, [walker.get_excludes(root, excludes)], record,
                      include_gitignore=True, logger=logging.getLogger(__name__))
    return Upload(tuple(sorted(files)), tuple(excludes))


def check_size(upload: Upload, max_mb: float) -> None:
    """Refuse an upload over ``max_mb`` MiB, naming its largest files."""
    if upload.total_bytes <= max_mb * MIB:
        return
    biggest = ", ".join(f"{name} ({size / MIB:.1f} MiB)" for name, size in upload.largest())
    raise UploadTooLargeError(
        f"the upload would be {upload.summary()}, over --max-upload-mb {max_mb:g}; largest: "
        f"{biggest}. Put data in storage (s3:// or a shared path) and list such files in "
        ".rayignore, or raise --max-upload-mb.")


def _marked_folders(root: Path, patterns: list[str], spec_type: type) -> list[str]:
    """``/rel/path/`` for each folder below ``root`` holding a :data:`FOLDER_MARKERS` file,
    outside the folders already excluded (a .venv can be huge: never walked)."""
    skip = spec_type.from_lines("gitwildmatch", patterns)
    found: list[str] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        for child in sorted(folder.iterdir()):
            rel = child.relative_to(root).as_posix()
            if not child.is_dir() or child.is_symlink() or skip.match_file(rel + "/"):
                continue
            if any((child / marker).is_file() for marker in FOLDER_MARKERS):
                found.append(f"/{rel}/")
            else:
                stack.append(child)
    return found
