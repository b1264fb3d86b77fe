"""mpmae: Ray-distributed pretraining of the MMEarth Multi-Pretext Masked Autoencoder."""

from mpmae.version import __version__

__all__ = ["__version__", "load_encoder"]


def __getattr__(name: str):
    # Lazy, so that `import mpmae` stays light (no torch) for the CLI and data workers.
    if name == "load_encoder":
        from mpmae.model.release import load_encoder

        return load_encoder
    raise AttributeError(f"module 'mpmae' has no attribute {name!r}")
