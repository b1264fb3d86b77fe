"""The installed package's version: recorded in datasets, releases and runs."""

from importlib.metadata import PackageNotFoundError, version

try:
    # The version lives in pyproject.toml only; an installed package knows it.
    __version__ = version("mpmae")
except PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"
