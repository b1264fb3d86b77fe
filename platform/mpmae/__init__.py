"""mpmae: Ray-distributed pretraining of the MMEarth Multi-Pretext Masked Autoencoder."""

from importlib.metadata import PackageNotFoundError, version

try:
    # The version lives in pyproject.toml only; an installed package knows it.
    __version__ = version("mpmae")
except PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"


def __getattr__(name: str):
    # Lazy, so that `import mpmae` stays light (no torch) for the CLI and data workers.
    if name == "load_encoder":
        from mpmae.model.release import load_encoder

        return load_encoder
    raise AttributeError(f"module 'mpmae' has no attribute {name!r}")
