"""GeoTIFF items decoded with rasterio (GDAL), as GEO-Bench-2's own loaders read them.

GEO-Bench-2 writes its GeoTIFFs ZSTD- or LZW-compressed; GDAL decodes both (tifffile
needs the separate imagecodecs for them). rasterio is an optional dependency, the
``geobench2`` extra, imported only here: ``import mpmae`` stays light.

An item's bytes are opened in memory with the GTiff driver only: a tortilla item that
claimed to be a VRT (which can name other files on this machine) is refused, not followed.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from mpmae.data.geobench2.errors import GeoBench2Error


def read_geotiff(data: bytes, where: str, n_bands: int | None = None) -> np.ndarray:
    """The (C, H, W) array of a GeoTIFF's bytes; ``n_bands`` checked where given."""
    rasterio = _rasterio()
    try:
        with warnings.catch_warnings():
            # Fixtures and some items carry no georeferencing; the pixels are what we read.
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.io.MemoryFile(data) as memory, memory.open(driver="GTiff") as src:
                count = src.count
                if n_bands is not None and count != n_bands:
                    raise GeoBench2Error(f"{where}: a GeoTIFF of {count} bands where the "
                                         f"benchmark has {n_bands}; download the dataset "
                                         "again")
                return src.read()
    except rasterio.errors.RasterioError as exc:
        reason = " ".join(str(exc).split())[:200]
        raise GeoBench2Error(f"{where}: not a readable GeoTIFF ({reason}); download the "
                             "dataset again") from None


def _rasterio() -> Any:
    try:
        import rasterio
        import rasterio.errors
        import rasterio.io
    except ImportError:
        raise GeoBench2Error("reading GEO-Bench-2 needs rasterio: pip install "
                             "'mpmae[geobench2]'") from None
    return rasterio
