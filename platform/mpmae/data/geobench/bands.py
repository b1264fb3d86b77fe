"""Matching a dataset's bands to an encoder's ``input_bands`` by name, never by position.

GEO-Bench orders Sentinel-2 bands ``… 08 - NIR, 08A - Vegetation Red Edge …``; our
pretraining order is ``… B8A, B8 …``. A positional mapping would swap them silently, so
each Sentinel-2 band is named ours (``B1`` … ``B12``, ``B8A``) from its GEO-Bench name and
alt names, and the encoder's input is built band by band from those names.

Only bands geobench marks as ``Sentinel2`` are matched: So2Sat's Sentinel-1 bands are
called ``01 - VH.Real`` …, and an aerial ``Red`` is not Sentinel-2's B4.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mpmae.data.geobench.errors import GeoBenchError
from mpmae.data.geobench.task_specs import BandSpec
from mpmae.modalities import S2_BANDS

SENTINEL2 = "Sentinel2"

# MMEarth's reference fills So2Sat's missing bands from their neighbours: B1 ← B2,
# B9 ← B8A. Any other missing band is an error, never a zero-fill.
FILLS = {"B1": "B2", "B9": "B8A"}

# Colour words GEO-Bench uses as alt names ("red", "NIR", …).
_COLOURS = {"blue": "B2", "green": "B3", "red": "B4", "nir": "B8"}


def _aliases() -> dict[str, str]:
    """Lower-case spellings of each band: "8a", "08a", "b8a", "b08a" → B8A, "8" … → B8."""
    table = dict(_COLOURS)
    for band in S2_BANDS:
        code = band[1:]  # "8A"
        number = code.rstrip("A")  # "8"
        suffix = code[len(number):].lower()  # "a"
        for digits in (number, number.zfill(2)):
            for prefix in ("", "b"):
                table[f"{prefix}{digits}{suffix}"] = band
    return table


ALIASES = _aliases()


def our_band_name(band: BandSpec, dataset: str = "") -> str | None:
    """Our name (``"B8A"``) for a GEO-Bench Sentinel-2 band, or None for any other band."""
    if band.sensor != SENTINEL2:
        return None
    # "08A - Vegetation Red Edge": the code before " - " names the band; the words after
    # it do not (three bands are "Vegetation Red Edge").
    spellings = {band.name, band.name.split(" - ")[0], *band.alt_names}
    found = {ALIASES[s.strip().lower()] for s in spellings if s.strip().lower() in ALIASES}
    if len(found) > 1:
        raise GeoBenchError(f"{dataset}: band {band.name!r} (alt names {band.alt_names}) "
                            f"reads as several Sentinel-2 bands {sorted(found)}; fix its "
                            "task_specs.pkl")
    return found.pop() if found else None


@dataclass(frozen=True)
class BandMatch:
    """Where each of an encoder's input bands comes from in one dataset.

    ``sources[i]`` is the GEO-Bench band read for ``input_bands[i]``; ``filled`` maps each
    input band the dataset lacks to our band it was copied from (announce and record it).
    """

    dataset: str
    input_bands: tuple[str, ...]
    sources: tuple[str, ...]
    filled: Mapping[str, str]


def match_bands(dataset: str, bands: Sequence[BandSpec], input_bands: Sequence[str]) -> BandMatch:
    """Match ``input_bands`` (an encoder release's, ours) to the dataset's ``bands``."""
    unknown = [b for b in input_bands if b not in S2_BANDS]
    if unknown:
        raise GeoBenchError(f"{dataset}: encoder input bands {unknown} are not Sentinel-2 "
                            f"bands we know ({', '.join(S2_BANDS)})")
    available = _by_our_name(dataset, bands)
    filled = {b: FILLS[b] for b in input_bands
              if b not in available and b in FILLS and FILLS[b] in available}
    missing = [b for b in input_bands if b not in available and b not in filled]
    if missing:
        raise GeoBenchError(f"{dataset} lacks Sentinel-2 bands {missing} the encoder needs "
                            f"(it has {sorted(available, key=S2_BANDS.index)}); pick an "
                            "encoder without them")
    sources = tuple(available[filled.get(b, b)] for b in input_bands)
    return BandMatch(dataset, tuple(input_bands), sources, filled)


def _by_our_name(dataset: str, bands: Sequence[BandSpec]) -> dict[str, str]:
    """Our band name → the GEO-Bench band name, for the dataset's Sentinel-2 bands."""
    found: dict[str, str] = {}
    for band in bands:
        ours = our_band_name(band, dataset)
        if ours is None:
            continue
        if ours in found:
            raise GeoBenchError(f"{dataset}: bands {found[ours]!r} and {band.name!r} both "
                                f"read as {ours}; fix its task_specs.pkl")
        found[ours] = band.name
    return found


def input_array(bands: Mapping[str, np.ndarray], match: BandMatch,
                sample: str = "") -> np.ndarray:
    """A sample's bands as the encoder's (C, H, W) float32 input, in ``match`` order."""
    absent = sorted({s for s in match.sources if s not in bands})
    if absent:
        raise GeoBenchError(f"{match.dataset} sample {sample}: bands {absent} are in "
                            "task_specs.pkl but not in the sample file")
    shapes = {s: bands[s].shape for s in match.sources}
    if len(set(shapes.values())) > 1:
        raise GeoBenchError(f"{match.dataset} sample {sample}: bands differ in size "
                            f"{shapes}; resampling is not supported")
    return np.stack([bands[s] for s in match.sources]).astype(np.float32, copy=False)
