"""A synthetic world: every modality of a tile is drawn from the same latent fields.

Land cover, elevation, climate and location are sampled first; Sentinel-2, Sentinel-1,
ASTER, canopy height, land-cover labels, ERA5, biome and ecoregion are rendered from them,
so predicting one modality from Sentinel-2 is learnable, as with real MMEarth tiles. A
separate "landscape" label (temperature zone × relief) is not itself a pretext target; it
labels the downstream set used to probe representations. As on Earth, Sentinel-2 shows it
only indirectly — temperature through how green the vegetation is (leaves need warmth and
water) and through snow, relief through hill shading — while ERA5 and ASTER give it
directly: an encoder learns it by learning to predict them.

Dtypes and no-data patterns follow the real release: uint16 S2 with 0 = no data at swath
edges, L1C haze and B10 vs L2A without B10, S1 with missing orbits (NaN) and mostly missing
HH/HV, Dynamic World zeros, ESA zeros, a few NaN ERA5 rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

LANDSCAPE_CLASSES = tuple(
    f"{zone}_{relief}"
    for zone in ("cold", "temperate", "hot")
    for relief in ("flat", "hilly", "mountainous")
)

# Dynamic World classes 0..8: water, trees, grass, flooded vegetation, crops, shrub & scrub,
# built, bare, snow & ice. Reflectance ×10⁴ per S2 band (B1..B12 incl. B8A, B10 set later).
_SIGNATURES = np.array([
    [700, 600, 550, 350, 300, 250, 230, 200, 200, 120, 0, 100, 80],
    [300, 350, 550, 350, 900, 2300, 2800, 3000, 2900, 1000, 0, 1400, 650],
    [400, 500, 800, 700, 1300, 2200, 2500, 2700, 2600, 900, 0, 2300, 1400],
    [350, 450, 650, 500, 900, 1600, 1800, 1900, 1800, 600, 0, 1100, 600],
    [450, 550, 850, 900, 1400, 2000, 2300, 2500, 2400, 850, 0, 2500, 1600],
    [500, 650, 900, 1100, 1500, 1900, 2100, 2300, 2200, 800, 0, 2900, 2100],
    [1100, 1200, 1300, 1400, 1500, 1600, 1700, 1800, 1750, 700, 0, 2200, 2000],
    [1200, 1400, 1800, 2300, 2600, 2800, 2900, 3000, 2950, 1000, 0, 3600, 3100],
    [6500, 7000, 7200, 7300, 7200, 7000, 6800, 6700, 6600, 2500, 0, 900, 700],
], dtype=np.float32)
# Dormant or drought-browned vegetation: leaves yellow, litter and soil show through.
_DORMANT = np.array([800, 1000, 1300, 1600, 1800, 2000, 2100, 2200, 2250, 900, 0, 3300, 2600],
                    np.float32)
_LEAFY = np.array([0, 1, 1, 1, 1, 1, 0, 0, 0], np.float32)  # trees … shrub & scrub
_HAZE_L1C = np.array([1100, 850, 600, 450, 400, 350, 300, 280, 290, 200, 0, 60, 30], np.float32)
_S1_VV_DB = np.array([-20, -8, -11, -13, -10, -12, -4, -14, -9], np.float32)
_ESA_OF_DW = np.array([80, 10, 30, 90, 40, 20, 50, 60, 70], np.uint8)


@dataclass
class SynthChunk:
    arrays: dict[str, np.ndarray]
    s2_types: list[str]
    splits: np.ndarray  # (N,) of "train"/"val"/"test"
    landscape: np.ndarray  # (N,) uint8 label, not a pretext target


def smooth_field(rng: np.random.Generator, n: int, size: int, cells: int) -> np.ndarray:
    """(n, size, size) smooth noise in about [-1, 1]: bilinear upsampling of a coarse grid."""
    coarse = rng.standard_normal((n, cells + 1, cells + 1)).astype(np.float32)
    u = np.linspace(0, cells, size, dtype=np.float32)
    i0 = np.minimum(u.astype(int), cells - 1)
    f = u - i0
    rows = coarse[:, i0] * (1 - f)[None, :, None] + coarse[:, i0 + 1] * f[None, :, None]
    return rows[:, :, i0] * (1 - f) + rows[:, :, i0 + 1] * f


CHUNK_TILES = 128
PIXEL_M = 10.0  # Sentinel-2's 10 m bands
SUN_ZENITH_DEG = 40.0


def world_chunks(tiles: int, size: int, seed: int) -> Iterator[tuple[int, SynthChunk]]:
    """The world of ``tiles`` tiles as (index of its first tile, chunk) pairs: chunk ``k``
    is drawn from its own seed ``[seed, k]``, so every reader of the same world gets the
    same tiles."""
    for chunk_index, first in enumerate(range(0, tiles, CHUNK_TILES)):
        n = min(CHUNK_TILES, tiles - first)
        yield first, generate_chunk(np.random.default_rng([seed, chunk_index]), n, size)


def generate_chunk(rng: np.random.Generator, n: int, size: int) -> SynthChunk:
    """``n`` tiles of ``size``×``size`` pixels with every modality of the catalogue."""
    lat = rng.uniform(-55, 72, n).astype(np.float32)
    lon = rng.uniform(-180, 180, n).astype(np.float32)
    month = rng.integers(1, 13, n)
    relief = rng.choice(3, n, p=[0.45, 0.35, 0.2])
    elevation, slope = _terrain(rng, n, size, relief)
    temp = _temperature(lat, month, elevation.mean((1, 2)))
    moisture = np.clip(
        0.5 + 0.3 * np.sin(np.radians(lon) * 2) + 0.15 * rng.standard_normal(n), 0, 1
    ).astype(np.float32)
    moisture_px = np.clip(moisture[:, None, None] + 0.3 * smooth_field(rng, n, size, 4), 0, 1)
    temp_px = temp[:, None, None] - 0.0065 * (elevation - elevation.mean((1, 2), keepdims=True))
    land = _land_cover(rng, n, size, moisture_px, temp_px, elevation, slope)
    s2, s2_types = _sentinel2(rng, land, slope, elevation, _greenness(temp_px, moisture_px))
    arrays = {
        "sentinel2": s2,
        "sentinel1": _sentinel1(rng, land, slope),
        "aster": np.stack([elevation, slope], 1).round().astype(np.int16),
        "canopy_height_eth": _canopy(rng, land),
        "dynamic_world": _dynamic_world(rng, land, s2),
        "esa_worldcover": _esa(rng, land, temp_px),
        "era5": _era5(rng, temp, moisture, month),
        "lat": _sincos(np.radians(lat)),
        "lon": _sincos(np.radians(lon)),
        "month": _sincos(2 * np.pi * month / 12),
        "biome": _biome(temp, moisture, land),
        "eco_region": None,
    }
    arrays["eco_region"] = _eco_region(arrays["biome"], lat, lon)
    splits = rng.choice(np.array(["train", "val", "test"]), n, p=[0.8, 0.1, 0.1])
    zone = np.digitize(temp, [5.0, 18.0])
    landscape = (3 * zone + relief).astype(np.uint8)
    return SynthChunk(arrays, s2_types, splits, landscape)


def _terrain(rng, n, size, relief) -> tuple[np.ndarray, np.ndarray]:
    # Relief in proportion to the tile's extent (10 m pixels), so that slopes do not depend
    # on the tile size: about 1.5° on flat tiles, 11° on hilly ones, 30° in mountains.
    amplitude = np.array([0.005, 0.04, 0.15], np.float32)[relief] * size * PIXEL_M
    base = rng.uniform(0, 1500, n).astype(np.float32) * (relief > 0) + 20
    field = smooth_field(rng, n, size, 3) + 0.3 * smooth_field(rng, n, size, 8)
    elevation = np.maximum(base[:, None, None] + amplitude[:, None, None] * field, 0)
    dy, dx = np.gradient(elevation, PIXEL_M, axis=(1, 2))
    slope = np.degrees(np.arctan(np.hypot(dx, dy)))
    return elevation.astype(np.float32), slope.astype(np.float32)


def _hillshade(elevation) -> np.ndarray:
    """Illumination relative to flat ground, the sun 40° from the zenith in the north-west
    (rows run south, columns east): the cosine of the incidence angle over cos(40°)."""
    dz_row, dz_col = np.gradient(elevation, PIXEL_M, axis=(1, 2))
    zenith = np.radians(SUN_ZENITH_DEG)
    towards_sun = np.sin(zenith) / np.sqrt(2) * (dz_col + dz_row) + np.cos(zenith)
    incidence = towards_sun / np.sqrt(1 + dz_col**2 + dz_row**2)
    return np.clip(incidence, 0.05, None) / np.cos(zenith)


def _temperature(lat, month, mean_elevation) -> np.ndarray:
    season = 12 * np.cos(2 * np.pi * (month - 7) / 12) * np.sign(lat) * np.abs(lat) / 60
    return (29 - 0.45 * np.abs(lat) + season - 0.0065 * mean_elevation).astype(np.float32)


def _land_cover(rng, n, size, moist, temp, elevation, slope) -> np.ndarray:
    low = elevation < np.percentile(elevation, 25, axis=(1, 2), keepdims=True)
    urban = smooth_field(rng, n, size, 6) + rng.uniform(-2.5, 0.5, n)[:, None, None] > 0.8
    conditions = [
        temp < -3, (moist > 0.82) & low, (moist > 0.72) & low, urban & (slope < 15),
        (moist > 0.5) & (temp > 0), (moist > 0.38) & (slope < 8), moist > 0.28, moist > 0.16,
    ]
    return np.select(conditions, [8, 0, 3, 6, 1, 4, 2, 5], default=7).astype(np.int64)


def _greenness(temp, moisture) -> np.ndarray:
    """How green leaves are, 0 (dormant) … 1: a growing season needs warmth (it starts near
    5 °C and is full above ~18 °C) and water (drought browns them)."""
    warmth = 1 / (1 + np.exp(-(temp - 10) / 3))
    return (warmth * np.clip(moisture / 0.45, 0, 1)).astype(np.float32)


def _sentinel2(rng, land, slope, elevation, greenness) -> tuple[np.ndarray, list[str]]:
    n, size, _ = land.shape
    shade = _hillshade(elevation)
    bright = 1 + 0.08 * smooth_field(rng, n, size, 5)
    dormant = (0.7 * (1 - greenness) * _LEAFY[land])[..., None]  # evergreen parts stay green
    refl = (_SIGNATURES[land] * (1 - dormant) + _DORMANT * dormant).transpose(0, 3, 1, 2)
    refl *= (shade * bright)[:, None]
    refl += rng.normal(0, 40, refl.shape).astype(np.float32)
    l2a = rng.random(n) < 0.5
    refl[~l2a] += _HAZE_L1C[None, :, None, None]
    refl[~l2a, 10] = rng.uniform(5, 40, (int((~l2a).sum()), 1, 1))  # cirrus band, L1C only
    _add_clouds(rng, refl)
    s2 = np.clip(refl, 1, 20000).astype(np.uint16)
    s2[l2a, 10] = 0
    edge = rng.random(n) < 0.08  # swath edge: a strip of no-data
    cut = rng.integers(size // 8, size // 3, n)
    for i in np.flatnonzero(edge):
        s2[i, :, :, : cut[i]] = 0
    return s2, ["l2a" if x else "l1c" for x in l2a]


def _add_clouds(rng, refl) -> None:
    n, _, size, _ = refl.shape
    cloudy = rng.random(n) < 0.1
    if cloudy.any():
        k = int(cloudy.sum())
        cover = np.clip(smooth_field(rng, k, size, 3) - 0.5, 0, 1)[:, None]
        refl[cloudy] = refl[cloudy] * (1 - cover) + 6000 * cover


def _sentinel1(rng, land, slope) -> np.ndarray:
    n, size, _ = land.shape
    vv = _S1_VV_DB[land] + 0.15 * slope
    out = np.empty((n, 8, size, size), np.float32)
    for orbit, offset in ((0, 0.0), (4, 0.8)):
        speckle = rng.normal(0, 1.0, (n, 4, size, size)).astype(np.float32)
        out[:, orbit + 0] = vv + offset + speckle[:, 0]
        out[:, orbit + 1] = vv - 7 + offset + speckle[:, 1]
        out[:, orbit + 2] = vv + 1 + offset + speckle[:, 2]
        out[:, orbit + 3] = vv - 6 + offset + speckle[:, 3]
    has_hh = rng.random(n) < 0.05
    out[~has_hh, 2:4] = np.nan
    out[~has_hh, 6:8] = np.nan
    missing = rng.random(n)
    out[missing < 0.25, 0:4] = np.nan
    out[(missing >= 0.25) & (missing < 0.45), 4:8] = -np.inf
    return out


def _canopy(rng, land) -> np.ndarray:
    n, size, _ = land.shape
    trees = land == 1
    height = np.where(trees, 18 + 8 * smooth_field(rng, n, size, 6), 0)
    std = np.where(trees, 3 + rng.uniform(0, 2, (n, size, size)), 0)
    return np.clip(np.stack([height, std], 1), 0, 60).round().astype(np.int8)


def _dynamic_world(rng, land, s2) -> np.ndarray:
    dw = (land + 1).astype(np.uint8)
    dw[s2[:, 1] == 0] = 0  # no label where S2 has no data
    dw[rng.random(len(land)) < 0.03] = 0  # whole tiles without a label
    return dw[:, None]


def _esa(rng, land, temp_px) -> np.ndarray:
    esa = _ESA_OF_DW[land]
    esa[(land == 3) & (temp_px > 24)] = 95  # mangroves
    esa[(land == 7) & (temp_px < 2)] = 100  # moss and lichen
    esa[rng.random(len(land)) < 0.02] = 0
    return esa[:, None]


def _era5(rng, temp, moisture, month) -> np.ndarray:
    n = len(temp)
    precip = (0.02 + 0.25 * moisture).astype(np.float32)
    rows = []
    for shift, spread in ((-1.5, 6), (0.0, 6), (0.0, 15)):
        mean = temp + shift + rng.normal(0, 0.5, n)
        rows += [mean, mean - spread / 2, mean + spread / 2, precip * (12 if spread == 15 else 1)]
    era5 = np.stack(rows, 1).astype(np.float32)
    era5[rng.random(n) < 0.02] = np.nan
    return era5


def _biome(temp, moisture, land) -> np.ndarray:
    water = (land == 0).mean((1, 2)) + (land == 3).mean((1, 2))
    conditions = [
        water > 0.35, temp < -2, (temp > 20) & (moisture > 0.6), (temp > 20) & (moisture > 0.4),
        (temp > 20) & (moisture > 0.22), moisture < 0.2, (temp > 10) & (moisture > 0.6),
        (temp > 10) & (moisture > 0.45), temp > 10, moisture > 0.45,
    ]
    return np.select(conditions, [8, 10, 0, 1, 6, 12, 3, 4, 11, 5], default=7).astype(np.uint8)


def _eco_region(biome, lat, lon) -> np.ndarray:
    cell = (np.floor((lat + 90) / 15) * 24 + np.floor((lon + 180) / 15)).astype(np.int64)
    return (biome.astype(np.int64) * 60 + (cell * 7919) % 60).astype(np.uint16)


def _sincos(angle) -> np.ndarray:
    return np.stack([np.sin(angle), np.cos(angle)], 1).astype(np.float32)
