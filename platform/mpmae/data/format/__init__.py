"""The tile format. Importing any part of it registers the ``mpmae.tile`` Arrow extension
type, so every mpmae reader of a v2 shard gets ndarrays from its array columns."""

from mpmae.data.format.tile_array import register

register()
