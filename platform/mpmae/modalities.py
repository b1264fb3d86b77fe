"""The catalogue of MMEarth modalities: the one place that knows bands, dtypes and task kinds.

The data format, the normaliser, the model heads and the losses all read this module;
nothing else hard-codes a band count or a class map.

Normalised batch contract (what the normaliser hands to the model):
  ``"image"``            float (B, C_in, H, W): encoder input, z-scored, missing → 0.
  pixel regression task  float (B, C, H, W): z-scores, NaN where missing.
  pixel class task       int64 (B, H, W): class index, IGNORE_INDEX where missing.
  image regression task  float (B, C): z-scores, NaN where missing.
  image class task       int64 (B,): class index, IGNORE_INDEX where missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from mpmae.errors import MpmaeError

IGNORE_INDEX = -1


class TaskKind(str, Enum):
    PIXEL_REGRESSION = "pixel_regression"
    PIXEL_CLASSES = "pixel_classes"
    IMAGE_REGRESSION = "image_regression"
    IMAGE_CLASS = "image_class"

    @property
    def is_pixel(self) -> bool:
        return self in (TaskKind.PIXEL_REGRESSION, TaskKind.PIXEL_CLASSES)

    @property
    def is_classification(self) -> bool:
        return self in (TaskKind.PIXEL_CLASSES, TaskKind.IMAGE_CLASS)


@dataclass(frozen=True)
class Modality:
    """One MMEarth modality as stored on disk and as a pretext task.

    ``bands`` are the stored channels (for pixel and image regression), ``dtype`` the
    on-disk numpy dtype. ``nodata`` is the stored value meaning "missing" (NaN/inf are
    always missing for float modalities). For class modalities ``class_values`` lists the
    raw values of classes 0..n-1; any other raw value is ignored.
    """

    name: str
    kind: TaskKind
    dtype: str
    bands: tuple[str, ...] = ()
    nodata: float | None = None
    num_classes: int = 0
    class_values: tuple[int, ...] = ()
    class_names: tuple[str, ...] = ()
    description: str = ""

    @property
    def num_bands(self) -> int:
        return len(self.bands)

    @property
    def stored_shape_per_tile(self) -> tuple[int, ...]:
        """Shape of one tile's value without the spatial dims (``(C,)`` or ``()``)."""
        if self.kind is TaskKind.IMAGE_CLASS:
            return ()
        return (max(1, self.num_bands),)

    @property
    def output_channels(self) -> int:
        """Values a head predicts per pixel (pixel tasks) or per image (image tasks)."""
        return self.num_classes if self.kind.is_classification else self.num_bands

    def class_lookup(self) -> np.ndarray:
        """A 256- or 65536-entry table mapping a raw stored value to a class or IGNORE_INDEX."""
        size = 256 if np.dtype(self.dtype).itemsize == 1 else 65536
        table = np.full(size, IGNORE_INDEX, dtype=np.int64)
        table[list(self.class_values)] = np.arange(len(self.class_values))
        return table


S2_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8A", "B8", "B9", "B10", "B11", "B12")
S2_INPUT_BANDS = tuple(b for b in S2_BANDS if b != "B10")
RGB_BANDS = ("B4", "B3", "B2")
S2_LEVELS = ("l1c", "l2a")

DW_CLASSES = ("water", "trees", "grass", "flooded_vegetation", "crops", "shrub_and_scrub",
              "built", "bare", "snow_and_ice")
ESA_VALUES = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100)
ESA_CLASSES = ("tree_cover", "shrubland", "grassland", "cropland", "built_up",
               "bare_sparse_vegetation", "snow_and_ice", "permanent_water",
               "herbaceous_wetland", "mangroves", "moss_and_lichen")
# In MMEarth-data's order (stats/biome_labels.json), which is what the one-hot columns
# hold, not RESOLVE's BIOME_NUM order (1 = tropical moist broadleaf … 14 = mangroves).
BIOMES = ("tundra", "tropical_moist_broadleaf", "mediterranean", "desert_xeric",
          "temperate_grassland", "boreal_taiga", "temperate_conifer",
          "temperate_broadleaf_mixed", "montane_grassland", "mangroves", "flooded_grassland",
          "tropical_grassland", "tropical_dry_broadleaf", "tropical_coniferous")
ERA5_BANDS = tuple(
    f"{period}_{var}"
    for period in ("prev_month", "month", "year")
    for var in ("t2m_mean", "t2m_min", "t2m_max", "total_precip")
)

MODALITIES: dict[str, Modality] = {
    m.name: m
    for m in (
        Modality("sentinel2", TaskKind.PIXEL_REGRESSION, "uint16", S2_BANDS, nodata=0,
                 description="Sentinel-2 L1C or L2A reflectance (L2A has no B10)"),
        Modality("sentinel1", TaskKind.PIXEL_REGRESSION, "float32",
                 ("asc_VV", "asc_VH", "asc_HH", "asc_HV",
                  "desc_VV", "desc_VH", "desc_HH", "desc_HV"),
                 description="Sentinel-1 backscatter; missing orbits/polarisations are NaN/-inf"),
        Modality("aster", TaskKind.PIXEL_REGRESSION, "int16", ("elevation", "slope"),
                 description="ASTER GDEM elevation and slope"),
        Modality("canopy_height_eth", TaskKind.PIXEL_REGRESSION, "int8", ("height", "std"),
                 description="ETH 2020 canopy height and its standard deviation"),
        Modality("dynamic_world", TaskKind.PIXEL_CLASSES, "uint8", ("label",), nodata=0,
                 num_classes=9, class_values=tuple(range(1, 10)), class_names=DW_CLASSES,
                 description="Dynamic World yearly mode label + 1 (0 = no data)"),
        Modality("esa_worldcover", TaskKind.PIXEL_CLASSES, "uint8", ("label",), nodata=0,
                 num_classes=11, class_values=ESA_VALUES, class_names=ESA_CLASSES,
                 description="ESA WorldCover 2020 classes (0 or 255 = no data)"),
        Modality("era5", TaskKind.IMAGE_REGRESSION, "float32", ERA5_BANDS,
                 description="ERA5 temperature and precipitation, three periods"),
        Modality("lat", TaskKind.IMAGE_REGRESSION, "float32", ("sin", "cos"),
                 description="sin/cos of the tile centroid latitude (radians)"),
        Modality("lon", TaskKind.IMAGE_REGRESSION, "float32", ("sin", "cos"),
                 description="sin/cos of the tile centroid longitude (radians)"),
        Modality("month", TaskKind.IMAGE_REGRESSION, "float32", ("sin", "cos"),
                 description="sin/cos of 2π·month/12 of the Sentinel-2 acquisition"),
        Modality("biome", TaskKind.IMAGE_CLASS, "uint8", nodata=255, num_classes=14,
                 class_values=tuple(range(14)), class_names=BIOMES,
                 description="RESOLVE 2017 biome, stored as a class index in "
                             "MMEarth-data's order (0 = tundra)"),
        Modality("eco_region", TaskKind.IMAGE_CLASS, "uint16", nodata=65535, num_classes=846,
                 class_values=tuple(range(846)),
                 description="RESOLVE 2017 ecoregion, stored as a class index"),
    )
}

PIXEL_MODALITIES = tuple(n for n, m in MODALITIES.items() if m.kind.is_pixel)
IMAGE_MODALITIES = tuple(n for n, m in MODALITIES.items() if not m.kind.is_pixel)


@dataclass(frozen=True)
class PretextSet:
    """Which tasks a model learns, and which Sentinel-2 bands go in (and come out for S2)."""

    name: str
    tasks: tuple[str, ...]
    input_bands: tuple[str, ...] = S2_INPUT_BANDS

    @property
    def in_chans(self) -> int:
        return len(self.input_bands)

    def output_channels(self, task: str) -> int:
        if task == "sentinel2":
            return len(self.input_bands)
        return MODALITIES[task].output_channels

    @property
    def columns(self) -> tuple[str, ...]:
        """Stored columns a data pipeline must read for this set."""
        return ("sentinel2", "s2_type", *(t for t in self.tasks if t != "sentinel2"))


PRETEXT_SETS: dict[str, PretextSet] = {
    "S2": PretextSet("S2", ("sentinel2",)),
    "pix": PretextSet("pix", ("sentinel2", *PIXEL_MODALITIES[1:])),
    "img": PretextSet("img", ("sentinel2", *IMAGE_MODALITIES)),
    "all": PretextSet("all", tuple(MODALITIES)),
    "rgb": PretextSet("rgb", ("sentinel2",), input_bands=RGB_BANDS),
}


class PretextError(MpmaeError, ValueError):
    """A pretext task list names unknown tasks or lacks the MAE target."""


def resolve_pretext(spec: str | list[str] | tuple[str, ...]) -> PretextSet:
    """A pretext set from its name (``"all"``) or an explicit task list (must include S2)."""
    if isinstance(spec, str):
        if spec in PRETEXT_SETS:
            return PRETEXT_SETS[spec]
        spec = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [t for t in spec if t not in MODALITIES]
    if unknown:
        raise PretextError(
            f"unknown pretext task(s) {unknown}; choose a set from {sorted(PRETEXT_SETS)} "
            f"or tasks from {list(MODALITIES)}"
        )
    if "sentinel2" not in spec:
        raise PretextError("a pretext task list must include 'sentinel2' (the MAE target)")
    ordered = tuple(t for t in MODALITIES if t in spec)
    return PretextSet("+".join(ordered), ordered)


def band_indices(bands: tuple[str, ...], of: tuple[str, ...] = S2_BANDS) -> list[int]:
    """Positions of ``bands`` within the stored band order ``of``."""
    return [of.index(b) for b in bands]
