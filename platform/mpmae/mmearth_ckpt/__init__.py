"""Import the MMEarth authors' pretraining checkpoints (``mpmae import-mmearth``).

Kept light: the CLI imports ``config`` on every start; torch loads only when a checkpoint is
imported.
"""
