"""``mpmae data inspect``: a readable summary of a tile dataset and a PNG sheet of tiles."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mpmae.data.format.manifest import DatasetError, ShardInfo
from mpmae.data.format.schema import PRESENCE_COLUMN, presence_bands
from mpmae.data.format.shards import corrupt_data, open_shard
from mpmae.data.format.tile_array import column_ndarray
from mpmae.data.inspect_config import InspectConfig
from mpmae.data.stream.tile_dataset import TileDataset
from mpmae.data.verify import NO_HASHES
from mpmae.modalities import MODALITIES, RGB_BANDS, S2_BANDS, TaskKind, band_indices
from mpmae.storage import StorageOptions, resolve, retrying


def summarize(ds: TileDataset) -> str:
    """Schema, counts per split, statistics and band presence, as text."""
    m = ds.manifest
    lines = [f"dataset {ds.root.uri}", f"  format v{m.format_version}, {m.tile_size}px tiles, "
             f"{m.num_tiles} tiles", "  splits:"]
    for split, shards in m.splits.items():
        size = sum(s.bytes for s in shards) / 2**20
        lines.append(f"    {split:<6} {m.split_tiles(split):>8} tiles in {len(shards)} shard(s), "
                     f"{size:.1f} MB")
    lines.append("  modalities:")
    for name in m.modalities:
        mod = MODALITIES[name]
        lines.append(f"    {name:<18} {mod.kind.value:<17} {mod.dtype:<8} {_bands(mod)}")
    lines.append("  statistics (mean ± std of the first bands):")
    for key, s in m.stats.items():
        means_stds = list(zip(s["mean"], s["std"], strict=True))[:4]
        pairs = ", ".join(f"{a:.3g}±{b:.3g}" for a, b in means_stds)
        lines.append(f"    {key:<18} {pairs}{' …' if len(s['mean']) > 4 else ''}")
    if m.labels:
        lines.append(f"  labels: {', '.join(m.labels)}")
    lines += _presence_lines(ds)
    lines += _integrity_lines(ds)
    lines.append(f"  provenance: {m.provenance}")
    lines.append(f"  licence: {m.license}")
    return "\n".join(lines)


def _bands(mod) -> str:
    if mod.kind.is_classification:
        return f"{mod.num_classes} classes"
    return ",".join(mod.bands)


def _presence_lines(ds: TileDataset) -> list[str]:
    """Share of tiles in the first shard where each band really exists (only if < 100%)."""
    first = _first_shard(ds)
    table = _read(ds, first.path, lambda shard: shard.read(columns=[PRESENCE_COLUMN]))
    rates = column_ndarray(table.column(PRESENCE_COLUMN)).mean(axis=0)
    names = presence_bands(ds.manifest.modalities)
    partial = [f"{n} {r:.0%}" for n, r in zip(names, rates, strict=True) if r < 1]
    return [f"  bands not always present ({first.path}): " + (", ".join(partial) or "none")]


def sample_tiles(ds: TileDataset, count: int) -> pa.Table:
    first = _first_shard(ds)
    return _read(ds, first.path, lambda shard: shard.read_row_group(0)).slice(0, count)


def _first_shard(ds: TileDataset) -> ShardInfo:
    return ds.manifest.shards(next(iter(ds.manifest.splits)))[0]


def _read(ds: TileDataset, name: str, read: Callable[[pq.ParquetFile], pa.Table]) -> pa.Table:
    """``read`` of one shard (page checksums verified); a damaged page names the shard, a
    store that throttles or fails says so (tried again first)."""
    loc = ds.root.join(*name.split("/"))
    try:
        return retrying(loc, lambda: read(open_shard(ds.root, name)))
    except (pa.ArrowException, OSError) as e:
        raise corrupt_data(ds.root, name, e) from None


def _integrity_lines(ds: TileDataset) -> list[str]:
    """Every shard's size against dataset.json; a shard of another size was replaced or
    damaged, and is named. Opening checked those whose row groups dataset.json records
    (from one listing of each folder); the others (a manifest of older mpmae, whose footers
    were read instead) are asked for their sizes here."""
    shards = [info for infos in ds.manifest.splits.values() for info in infos]
    for info in (info for info in shards if not info.row_groups):
        loc = ds.root.join(*info.path.split("/"))
        size = loc.size()
        if info.bytes and size != info.bytes:
            raise DatasetError(
                f"shard {loc.uri} is {size} bytes, dataset.json says {info.bytes}: it was "
                "replaced or damaged; run `mpmae data verify`, then re-run the conversion")
    lines = [f"  integrity: sizes of {len(shards)} shards match dataset.json; "
             "`mpmae data verify` reads every page"]
    if not ds.manifest.has_hashes:
        lines.append(f"  note: {NO_HASHES}")
    return lines


def tile_sheet_png(ds: TileDataset, count: int = InspectConfig.tiles) -> bytes:
    """A PNG: one row per tile; S2 RGB then every other pixel modality, image values as text."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = sample_tiles(ds, count)
    pixel = [n for n in ds.manifest.modalities if MODALITIES[n].kind.is_pixel]
    fig, axes = plt.subplots(table.num_rows, len(pixel) + 1,
                             figsize=(2.2 * (len(pixel) + 1), 2.2 * table.num_rows),
                             squeeze=False)
    for col, name in enumerate(pixel):
        values = column_ndarray(table.column(name))
        for row in range(table.num_rows):
            _draw(axes[row][col], name, values[row])
            axes[0][col].set_title(name if name != "sentinel2" else "sentinel2 (RGB)", fontsize=8)
    for row in range(table.num_rows):
        ax = axes[row][-1]
        ax.axis("off")
        ax.text(0, 0.5, _image_values(table, row), fontsize=6, va="center", family="monospace")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def _draw(ax, name: str, tile: np.ndarray) -> None:
    ax.axis("off")
    mod = MODALITIES[name]
    if name == "sentinel2":
        rgb = tile[band_indices(RGB_BANDS, S2_BANDS)].astype(np.float32).transpose(1, 2, 0)
        ax.imshow(np.clip(rgb / 3000.0, 0, 1))
    elif mod.kind is TaskKind.PIXEL_CLASSES:
        ax.imshow(mod.class_lookup()[tile[0]], cmap="tab20", vmin=-1, vmax=19,
                  interpolation="nearest")
    else:
        band = np.where(np.isfinite(tile[0].astype(np.float32)), tile[0], np.nan)
        ax.imshow(band, cmap="viridis")


def _image_values(table: pa.Table, row: int) -> str:
    lines = [str(table.column("tile_id")[row]), str(table.column("s2_type")[row])]
    for name in table.column_names:
        mod = MODALITIES.get(name)
        if mod is None or mod.kind.is_pixel:
            continue
        if mod.kind is TaskKind.IMAGE_CLASS:
            lines.append(f"{name}: {table.column(name)[row]}")
        else:
            vals = column_ndarray(table.column(name))[row][:4]
            lines.append(f"{name}: " + " ".join(f"{v:.2f}" for v in vals))
    return "\n".join(lines)


def inspect_dataset(uri: str, png: str = InspectConfig.png, tiles: int = InspectConfig.tiles,
                    storage: StorageOptions | None = None) -> str:
    """Check the dataset, return its summary; write a sheet of ``tiles`` tiles to ``png``
    unless it is empty. The options are :class:`InspectConfig`'s."""
    InspectConfig(png=png, tiles=tiles).validate()
    ds = TileDataset.open(uri, storage)
    text = summarize(ds)
    if png:
        resolve(png, storage).write_bytes_atomic(tile_sheet_png(ds, tiles))
        text += f"\n  tile sheet: {png}"
    return text
