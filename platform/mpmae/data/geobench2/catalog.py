"""GEO-Bench-2's 19 datasets: what each holds and how the benchmark uses it.

Sources (read September–December 2025, facts only, no code copied):
- the list, the capability groups and the required seed count: the leaderboard's
  ``utils/constants.py`` (The-AI-Alliance/GEO-Bench-2-Leaderboard, ``DATASETS``,
  ``DIMENSIONS``, ``REQUIRED_SEEDS``);
- files, items, band order on disk, classes: each dataset's loader,
  ``geobench_v2/datasets/<name>.py`` (``paths``, ``band_default_order``, ``classes``, the
  ``sample_row.read(i)`` calls) and ``sensor_util.DatasetBandRegistry``
  (The-AI-Alliance/GEO-Bench-2 at ef78db1; ``so2sat.py``/``forestnet.py`` at later commits);
- the benchmark's input size: the ``img_size`` default of each
  ``geobench_v2/datamodules/<name>.py``; So2Sat and ForestNet have no data module there and
  keep GEO-Bench v1's native size (m-so2sat 32, m-forestnet 332);
- the two normalisation schemes: ``geobench_v2/datamodules/dataset_stats_satmae`` and
  ``dataset_stats_clip_rescale``, one ``<name>/<name>_stats.json`` each (none for
  So2Sat and ForestNet there, and no SatMAE file for FLAIR 2), see ``stats.py``;
- the task of each dataset: the leaderboard's ``DATASET_INFO`` descriptions and arXiv
  2511.15658.

``pastis`` (semantic segmentation) and ``pastis_r`` (instance segmentation) are one set of
files scored twice. Items are found by position in a sample, as the benchmark's loaders read them
(``sample_row.read(i)``; CloudSEN12's ``l2a_row.read(0)``/``read(1)``, the same depth), or by
id (Dynamic EarthNet's Sentinel-2 image), or as a dated series by the footer's
``modality`` column (BioMassters' months) or by positions (Fields of the World's windows A
and B, ``read(0)``/``read(1)``); PASTIS' items are HDF5 files, each modality's whole
series in one item. A modality without any of these is a dated series this reader does
not read yet, or one not placed here yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Task(str, Enum):
    CLASSIFICATION = "classification"
    MULTI_LABEL = "multi_label"
    SEGMENTATION = "segmentation"
    REGRESSION = "regression"  # pixel-wise (BioMassters' above-ground biomass)
    DETECTION = "detection"
    INSTANCE_SEGMENTATION = "instance_segmentation"


# The leaderboard's capability groups ("dimensions"), in its column order.
GROUPS = ("Core", "Multi-Spectral-Dependent", "Multi-Temporal", "Pixel-wise",
          "Classification", "Detection (Object/Instance)", "Under 10m Resolution",
          "10m and Above Resolution", "RGB/NIR")
REQUIRED_SEEDS = 5
STATS_SCHEMES = ("satmae", "clip_rescale")
SENTINEL2 = "Sentinel2"  # the sensor name data/geobench's band matching looks for
GEOTIFF, HDF5 = "GTiff", "HDF5"  # tortilla:file_format of a sample's items

_S2_12 = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
_S2_10 = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")


@dataclass(frozen=True)
class Modality:
    """One image of a sample: the item that holds it and its bands in file order."""

    key: str  # "s2": the benchmark's modality name, "image_<key>" in its statistics files
    item: int | None  # its position among a sample's items, as the benchmark reads it;
    # None: a dated series (several items), not read yet, or found by item_id
    sensor: str
    bands: tuple[str, ...]
    # Found by its tortilla:id instead of a position: Dynamic EarthNet's one Sentinel-2
    # image beside its dated PlanetScope series (its loader's ``tortilla:id == "s2"`` row);
    # a sample without it reads as zeros, as that loader reads it.
    item_id: str | None = None
    # A dated series: the items whose footer ``modality`` column holds this value, in
    # footer order (BioMassters' "S1" and "S2" months, as its loader selects them).
    series: str | None = None
    # A dated series found by position: Fields of the World's windows A and B (0, 1).
    positions: tuple[int, ...] = ()

    @property
    def placed(self) -> bool:
        """Whether the reader knows where this modality's one image is (for an HDF5
        dataset, the one item holding its whole series)."""
        return self.item is not None or self.item_id is not None

    @property
    def dated(self) -> bool:
        """Whether the reader finds this modality as a series of dated GeoTIFF items."""
        return self.series is not None or bool(self.positions)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    task: Task
    files: tuple[str, ...]  # the tortilla files, in the benchmark's order
    modalities: tuple[Modality, ...]
    input_size: int  # the benchmark's image size (its data module's img_size)
    classes: tuple[str, ...]  # empty for regression
    label_column: str | None = None  # scene labels: a footer column
    label_item: int | None = None  # pixel labels: the position of the mask item (-1: last)
    temporal: bool = False
    # Regression: the target as the benchmark feeds it is the stored value / target_std
    # (its RMSE, and so the leaderboard's, is in those units).
    target_std: float = 1.0
    # Its items' format: GeoTIFF, or HDF5 (PASTIS: a modality's series in one item).
    item_format: str = GEOTIFF

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(g for g in GROUPS if self.name in _MEMBERS[g])


def _files(stem: str, parts: int = 0) -> tuple[str, ...]:
    if not parts:
        return (f"geobench_{stem}.tortilla",)
    return tuple(f"geobench_{stem}.{i:04d}.part.tortilla" for i in range(parts))


def _rgb(key: str, item: int | None, sensor: str, *extra: str) -> Modality:
    return Modality(key, item, sensor, ("red", "green", "blue", *extra))


_PASTIS = dict(
    # Items s2, s1a, s1d (HDF5 series (T, C, H, W)), semantic ((3, H, W), its loader
    # reads band 0), instance.
    files=_files("pastis", 3), input_size=128, temporal=True, label_item=3, item_format=HDF5,
    modalities=(Modality("s2", 0, SENTINEL2, _S2_10),
                Modality("s1_asc", 1, "Sentinel1", ("VV_asc", "VH_asc", "VV/VH_asc")),
                Modality("s1_desc", 2, "Sentinel1", ("VV_desc", "VH_desc", "VV/VH_desc"))),
    # torchgeo.datasets.PASTIS.classes: background, 18 crop types and a void label; their
    # names are not recorded here, only their count.
    classes=tuple(f"pastis_{i}" for i in range(20)))

DATASETS: dict[str, DatasetInfo] = {d.name: d for d in (
    # Its items: 12 monthly S1 images and 0–12 S2 ones (footer column ``modality``), the
    # above-ground biomass map (Mg/ha) last; its loader divides AGB by 289.89 (its "98
    # percentile", mean 0) and scores RMSE on that.
    DatasetInfo("biomassters", Task.REGRESSION, _files("biomassters", 1), (
        Modality("s1", None, "Sentinel1", ("VV_asc", "VH_asc", "VV_desc", "VH_desc"),
                 series="S1"),
        Modality("s2", None, SENTINEL2, _S2_10, series="S2")), 256, (), label_item=-1,
        temporal=True, target_std=289.89),
    DatasetInfo("so2sat", Task.CLASSIFICATION, _files("so2sat"), (
        Modality("s1", 0, "Sentinel1", ("VV", "VH")),
        Modality("s2", 1, SENTINEL2, _S2_10)), 32, (
        "Compact high-rise", "Compact middle-rise", "Compact low-rise", "Open high-rise",
        "Open middle-rise", "Open low-rise", "Lightweight low-rise", "Large low-rise",
        "Sparsely built", "Heavy industry", "Dense Trees", "Scattered trees", "Bush, scrub",
        "Low plants", "Bare rock or paved", "Bare soil or sand", "Water"),
        label_column="labels"),
    # Landsat-8 bands the benchmark names like Sentinel-2's: not matched as Sentinel-2.
    DatasetInfo("forestnet", Task.CLASSIFICATION, _files("forestnet"), (
        Modality("image", 0, "Landsat8", ("B02", "B03", "B04", "B8A", "B11", "B12")),),
        332, ("Oil palm plantation", "Timber plantation", "Other large-scale plantations",
              "Grassland/shrubland", "Small-scale agriculture", "Small-scale mixed plantation",
              "Small-scale oil palm plantation", "Mining", "Fish pond", "Logging road",
              "Secondary forest", "Other"), label_column="labels"),
    DatasetInfo("benv2", Task.MULTI_LABEL, _files("benv2"), (
        Modality("s1", 0, "Sentinel1", ("VV", "VH")),
        Modality("s2", 1, SENTINEL2, _S2_12)), 120, (
        "Urban fabric", "Industrial or commercial units", "Arable land", "Permanent crops",
        "Pastures", "Complex cultivation patterns",
        "Land principally occupied by agriculture, with significant areas of natural "
        "vegetation", "Agro-forestry areas", "Broad-leaved forest", "Coniferous forest",
        "Mixed forest", "Natural grassland and sparsely vegetated areas",
        "Moors, heathland and sclerophyllous vegetation", "Transitional woodland, shrub",
        "Beaches, dunes, sands", "Inland wetlands", "Coastal wetlands", "Inland waters",
        "Marine waters"), label_column="labels"),
    DatasetInfo("treesatai", Task.MULTI_LABEL, _files("treesatai"), (
        Modality("aerial", 0, "aerial", ("nir", "green", "blue", "red")),
        Modality("s1", 1, "Sentinel1", ("vv", "vh", "vv/vh")),
        Modality("s2", 2, SENTINEL2, ("B02", "B03", "B04", "B08", "B05", "B06", "B07",
                                         "B8A", "B11", "B12", "B01", "B09"))), 304, (
        "Abies", "Acer", "Alnus", "Betula", "Cleared", "Fagus", "Fraxinus", "Larix",
        "Picea", "Pinus", "Populus", "Prunus", "Pseudotsuga", "Quercus", "Tilia"),
        label_column="species_labels"),
    DatasetInfo("kuro_siwo", Task.SEGMENTATION, _files("kuro_siwo"), (
        Modality("sar", None, "Sentinel1", ("vv", "vh")),
        Modality("dem", None, "dem", ("dem",))), 224,
        ("No Data", "No Water", "Permanent Water", "Flood"), temporal=True),
    # Its dated series is PlanetScope's (daily); Sentinel-2 is one image per sample, the
    # item with id "s2" (``read(-2)``), the mask the last item (``read(-1)``).
    DatasetInfo("dynamic_earthnet", Task.SEGMENTATION, _files("dynamic_earthnet", 3), (
        Modality("planet", None, "PlanetScope", ("r", "g", "b", "nir")),
        Modality("s2", None, SENTINEL2, ("B01", "B02", "B03", "B04", "B05", "B06", "B07",
                                         "B08", "B8A", "B10", "B11", "B12"), item_id="s2")),
        512, ("Impervious surfaces", "Agriculture", "Forest & other vegetation", "Wetlands",
              "Soil", "Water", "Snow & ice"), label_item=-1, temporal=True),
    DatasetInfo("pastis", Task.SEGMENTATION, **_PASTIS),
    DatasetInfo("burn_scars", Task.SEGMENTATION, _files("burn_scars"), (
        Modality("image", 0, "HLS", ("B02", "B03", "B04", "B8A", "B11", "B12")),), 512,
        ("Background", "Burn Scar"), label_item=1),
    DatasetInfo("spacenet2", Task.SEGMENTATION, _files("spacenet2", 3), (
        Modality("worldview", None, "WorldView3", ("coastal", "blue", "green", "yellow", "red",
                                                   "red_edge", "nir1", "nir2")),
        Modality("pan", None, "WorldView3", ("pan",))), 512,
        ("background", "no-building", "building")),
    # Its loader reads a sample as flair2's does: read(0) the L2A image, read(1) the mask.
    DatasetInfo("cloudsen12", Task.SEGMENTATION, _files("cloudsen12"), (
        Modality("s2", 0, SENTINEL2, _S2_12),), 512,
        ("clear", "thick cloud", "thin cloud", "cloud shadow"), label_item=1),
    # Fields of the World: Sentinel-2 L2A windows A and B (two dates of a season, items 0
    # and 1; its loader returns both, ``image_a``/``image_b``), R, G, B, NIR as it names
    # them; item 2 the instance mask, item 3 the 3-class semantic mask. Key "a": its
    # statistics files describe window A as ``image_a``.
    DatasetInfo("fotw", Task.SEGMENTATION, _files("fotw"), (
        Modality("a", None, SENTINEL2, ("red", "green", "blue", "nir"), positions=(0, 1)),),
        256, ("background", "field", "field-boundary"), label_item=3),
    DatasetInfo("caffe", Task.SEGMENTATION, _files("caffe"), (
        Modality("image", 0, "SAR", ("gray",)),), 512,
        ("N/A", "rock", "glacier", "ocean/ice melange"), label_item=1),
    DatasetInfo("flair2", Task.SEGMENTATION, _files("flair2"), (
        _rgb("aerial", 0, "aerial", "nir"),
        Modality("elevation", None, "dem", ("elevation",))), 512, (
        "building", "pervious surface", "impervious surface", "bare soil", "water",
        "coniferous", "deciduous", "brushwood", "vineyard", "herbaceous vegetation",
        "agricultural land", "plowed land", "other"), label_item=1),
    DatasetInfo("spacenet7", Task.SEGMENTATION, _files("spacenet7"), (
        _rgb("image", 0, "PlanetScope", "nir"),), 512,
        ("background", "no-building", "building"), label_item=1),
    DatasetInfo("substation", Task.INSTANCE_SEGMENTATION, _files("substation"), (
        Modality("s2", None, SENTINEL2, ("B01", "B02", "B03", "B04", "B05", "B06", "B07",
                                         "B08", "B8A", "B09", "B10", "B11", "B12")),), 228,
        ("background", "power_station")),
    DatasetInfo("everwatch", Task.DETECTION, _files("everwatch"), (
        _rgb("image", 0, "aerial"),), 512, (
        "White Ibis", "Great Egret", "Great Blue Heron", "Snowy Egret", "Wood Stork",
        "Roseate Spoonbill", "Anhinga", "Unknown White")),
    DatasetInfo("nzcattle", Task.DETECTION, _files("nzcattle"), (
        _rgb("image", 0, "aerial"),), 512, ("background", "cattle")),
    DatasetInfo("pastis_r", Task.INSTANCE_SEGMENTATION, **_PASTIS),
)}

# The leaderboard's DIMENSIONS, dataset by group.
_MEMBERS: dict[str, frozenset[str]] = {g: frozenset(m) for g, m in {
    "Core": ("kuro_siwo", "pastis", "burn_scars", "cloudsen12", "flair2", "spacenet7",
             "benv2", "treesatai", "biomassters", "fotw", "substation", "everwatch"),
    "Multi-Spectral-Dependent": ("benv2", "biomassters", "pastis", "so2sat", "cloudsen12",
                                 "spacenet2", "burn_scars", "fotw"),
    "Multi-Temporal": ("kuro_siwo", "pastis", "biomassters", "dynamic_earthnet"),
    "Pixel-wise": ("kuro_siwo", "pastis", "burn_scars", "spacenet2", "cloudsen12", "caffe",
                   "flair2", "dynamic_earthnet", "biomassters", "spacenet7", "fotw"),
    "Classification": ("so2sat", "forestnet", "benv2", "treesatai"),
    "Detection (Object/Instance)": ("substation", "everwatch", "nzcattle", "pastis_r"),
    "Under 10m Resolution": ("spacenet2", "treesatai", "flair2", "dynamic_earthnet",
                             "spacenet7"),
    "10m and Above Resolution": ("biomassters", "so2sat", "kuro_siwo", "cloudsen12", "pastis",
                                 "benv2", "forestnet", "burn_scars", "caffe", "fotw"),
    "RGB/NIR": ("flair2", "treesatai", "dynamic_earthnet", "spacenet7", "fotw"),
}.items()}

SUPPORTED_TASKS = (Task.CLASSIFICATION, Task.MULTI_LABEL, Task.SEGMENTATION, Task.REGRESSION)


def s2_readable(info: DatasetInfo) -> bool:
    """Whether the reader can give ``info``'s Sentinel-2 image: every Sentinel-2 modality
    placed (one image by position or id, or PASTIS' HDF5 series item) or a series of dated
    GeoTIFFs (BioMassters' months, Fields of the World's windows)."""
    s2 = [m for m in info.modalities if m.sensor == SENTINEL2]
    return bool(s2) and all(m.placed or m.dated for m in s2)


def dataset_info(name: str) -> DatasetInfo:
    """The table's entry for ``name`` (``"benv2"``, …)."""
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a GEO-Bench-2 dataset ({', '.join(DATASETS)})") from None
