"""mpmae: Ray-distributed pretraining of the MMEarth Multi-Pretext Masked Autoencoder."""

from mpmae.lazy import lazy_getattr
from mpmae.version import __version__

__all__ = ["__version__", "load_encoder"]

# Lazy, so that `import mpmae` stays light (no torch) for the CLI and data workers.
__getattr__ = lazy_getattr(__name__, {"load_encoder": "mpmae.model.release"})
