"""Per-band statistics (mean, std, min, max) accumulated over tiles, excluding no-data."""

from __future__ import annotations

import numpy as np

from mpmae.modalities import MODALITIES, S2_LEVELS


def stats_key(modality: str, s2_level: str | None = None) -> str:
    """Key of a modality's statistics; Sentinel-2 has one set per processing level."""
    return f"sentinel2_{s2_level}" if modality == "sentinel2" else modality


def valid_mask(modality: str, values: np.ndarray) -> np.ndarray:
    """Where ``values`` hold data: finite and not the modality's no-data value."""
    m = MODALITIES[modality]
    valid = np.isfinite(values) if values.dtype.kind == "f" else np.ones(values.shape, bool)
    if m.nodata is not None:
        valid &= values != m.nodata
    return valid


class BandStats:
    """Streaming sums per statistics key; ``add`` chunks of tiles, then ``result``."""

    def __init__(self) -> None:
        self._acc: dict[str, dict[str, np.ndarray]] = {}

    def add(self, modality: str, values: np.ndarray, s2_levels: np.ndarray | None = None) -> None:
        """Accumulate (N, C, …) ``values``; ``s2_levels`` (N,) splits Sentinel-2 by level."""
        if MODALITIES[modality].kind.is_classification:
            return
        if modality != "sentinel2":
            self._add(modality, values)
            return
        for level in S2_LEVELS:
            rows = s2_levels == level
            if rows.any():
                self._add(stats_key(modality, level), values[rows], modality)

    def _add(self, key: str, values: np.ndarray, modality: str | None = None) -> None:
        modality = modality or key
        channels = values.shape[1]
        x = np.moveaxis(values, 1, 0).reshape(channels, -1).astype(np.float64)
        valid = valid_mask(modality, np.moveaxis(values, 1, 0).reshape(channels, -1))
        acc = self._acc.setdefault(key, {
            "n": np.zeros(channels), "sum": np.zeros(channels), "sq": np.zeros(channels),
            "min": np.full(channels, np.inf), "max": np.full(channels, -np.inf),
        })
        xz = np.where(valid, x, 0.0)
        acc["n"] += valid.sum(1)
        acc["sum"] += xz.sum(1)
        acc["sq"] += (xz * xz).sum(1)
        acc["min"] = np.minimum(acc["min"], np.where(valid, x, np.inf).min(1))
        acc["max"] = np.maximum(acc["max"], np.where(valid, x, -np.inf).max(1))

    def result(self) -> dict[str, dict[str, list[float]]]:
        """mean/std/min/max per band; a band never seen gets mean 0, std 1 (a no-op z-score)."""
        out = {}
        for key, a in self._acc.items():
            n = np.maximum(a["n"], 1)
            mean = a["sum"] / n
            std = np.sqrt(np.maximum(a["sq"] / n - mean**2, 0.0))
            seen = a["n"] > 0
            out[key] = {
                "mean": np.where(seen, mean, 0.0).tolist(),
                "std": np.where(seen & (std > 0), std, 1.0).tolist(),
                "min": np.where(seen, a["min"], 0.0).tolist(),
                "max": np.where(seen, a["max"], 0.0).tolist(),
            }
        return out

