"""What ``mpmae import-mmearth`` accepts: its flags, ``--help-config`` and the defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

from mpmae.config import doc, require


@dataclass(frozen=True)
class ImportConfig:
    name: str = field(default="", metadata=doc(
        "The checkpoint's name as the authors publish it, e.g. "
        "pt-all_mod_atto_1M_64_uncertainty_56-8; empty: the checkpoint's folder or file name"))
    bands: str = field(default="", metadata=doc(
        "Input bands in channel order, comma-separated (e.g. B2,B3,B4); empty: MMEarth's "
        "12 Sentinel-2 bands B1…B12 without B10 (B8A before B8), or B2,B3,B4 for a "
        "3-channel (rgb) checkpoint"))
    stats: str = field(default="", metadata=doc(
        "MMEarth's <dataset>_band_stats.json, whose sentinel2_l1c / sentinel2_l2a statistics "
        "become the release's normalisation; empty: none (evaluate with normalise=dataset)"))
    overwrite: bool = field(default=False, metadata=doc(
        "Replace a non-empty DEST folder; false: refuse"))

    def validate(self) -> None:
        bands = self.band_list()
        require(len(set(bands)) == len(bands), "bands", f"lists a band twice: {self.bands}")

    def band_list(self) -> tuple[str, ...]:
        """``bands`` split on commas; empty: the checkpoint decides."""
        return tuple(b.strip() for b in self.bands.split(",") if b.strip())
