"""mpmae: Ray-distributed pretraining of the MMEarth Multi-Pretext Masked Autoencoder."""

__version__ = "0.1.0"
