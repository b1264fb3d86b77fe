"""``dataset.json``: what a tile dataset holds, its band statistics, splits and provenance.

The manifest is written last, so a dataset whose ``dataset.json`` exists is complete;
readers refuse a folder without one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from mpmae.data.format.manifest_checks import manifest_problem
from mpmae.data.format.schema import (
    FORMAT_NAME,
    FORMAT_VERSION,
    READABLE_VERSIONS,
    presence_bands,
    tile_schema,
)
from mpmae.errors import MpmaeError
from mpmae.modalities import MODALITIES, TaskKind
from mpmae.storage import Location

MANIFEST_NAME = "dataset.json"


class DatasetError(MpmaeError, ValueError):
    """A dataset (manifest or shard) is missing, malformed or inconsistent."""


@dataclass
class ShardInfo:
    path: str  # relative to the dataset root, '/'-separated
    tiles: int
    bytes: int = 0
    sha256: str = ""  # hex digest of the file; empty in manifests of older mpmae versions
    # Tiles in each Parquet row group, in order: what the stream plans its reads from, so
    # that start-up reads no footer. Empty in manifests of older mpmae versions.
    row_groups: list[int] = field(default_factory=list)


@dataclass
class Manifest:
    tile_size: int
    modalities: list[str]
    stats: dict[str, dict[str, list[float]]]
    splits: dict[str, list[ShardInfo]]
    provenance: dict = field(default_factory=dict)
    license: str = ""
    labels: list[str] = field(default_factory=list)
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    @property
    def num_tiles(self) -> int:
        return sum(s.tiles for shards in self.splits.values() for s in shards)

    def split_tiles(self, split: str) -> int:
        return sum(s.tiles for s in self.shards(split))

    def shards(self, split: str) -> list[ShardInfo]:
        if split not in self.splits:
            raise DatasetError(f"split '{split}' not in dataset; it has {sorted(self.splits)}")
        return self.splits[split]

    def schema(self):
        return tile_schema(self.modalities, self.tile_size, with_label=bool(self.labels),
                           version=self.format_version)

    def to_json(self) -> str:
        doc = {
            "format": self.format,
            "format_version": self.format_version,
            "tile_size": self.tile_size,
            "num_tiles": self.num_tiles,
            "modalities": {n: _describe(n, self.tile_size, self.format_version)
                           for n in self.modalities},
            "band_presence": presence_bands(self.modalities),
            "stats": self.stats,
            "splits": {k: [_shard_entry(s) for s in v] for k, v in self.splits.items()},
            "labels": self.labels,
            "provenance": self.provenance,
            "license": self.license,
        }
        return json.dumps(doc, indent=1)

    @classmethod
    def from_json(cls, text: str, where: str = "dataset.json") -> Manifest:
        try:
            doc = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DatasetError(f"{where} is malformed ({e}); re-create the dataset") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
            raise DatasetError(f"{where} is not an mpmae tile manifest (a JSON object with "
                               f"format '{FORMAT_NAME}'); re-create the dataset")
        if doc.get("format_version") not in READABLE_VERSIONS:
            raise DatasetError(
                f"{where} has format version {doc.get('format_version')!r}; this mpmae "
                f"reads versions {', '.join(map(str, READABLE_VERSIONS))}: upgrade mpmae or "
                "re-convert the data"
            )
        problem = manifest_problem(doc)
        if problem:
            raise DatasetError(f"{where}: {problem}; fix the file or re-create the dataset")
        return cls(
            tile_size=doc["tile_size"],
            modalities=list(doc["modalities"]),
            stats=doc["stats"],
            splits={k: [_shard_info(s) for s in v] for k, v in doc["splits"].items()},
            provenance=doc.get("provenance", {}),
            license=doc.get("license", ""),
            labels=doc.get("labels", []),
            format_version=doc["format_version"],
        )

    @property
    def has_hashes(self) -> bool:
        """Whether every shard's SHA-256 is recorded (manifests of older mpmae lack them)."""
        return all(s.sha256 for shards in self.splits.values() for s in shards)


def _shard_info(entry: dict) -> ShardInfo:
    return ShardInfo(path=entry["path"], tiles=entry["tiles"], bytes=entry.get("bytes", 0),
                     sha256=entry.get("sha256", ""), row_groups=list(entry.get("row_groups", [])))


def _shard_entry(info: ShardInfo) -> dict:
    """A shard's manifest entry; ``row_groups`` only where known (an older manifest read
    and written again stays as it was)."""
    entry = asdict(info)
    if not info.row_groups:
        del entry["row_groups"]
    return entry


def _describe(name: str, tile_size: int, version: int) -> dict:
    m = MODALITIES[name]
    shape = [m.num_bands, tile_size, tile_size] if m.kind.is_pixel else list(
        m.stored_shape_per_tile)
    described = {"kind": m.kind.value, "dtype": m.dtype, "shape": shape,
                 "bands": list(m.bands), "nodata": m.nodata, "num_classes": m.num_classes}
    if version >= 2 and m.kind is not TaskKind.IMAGE_CLASS:
        # A reader without mpmae views each value's bytes as ``dtype`` of ``shape``.
        described["storage"] = "fixed_size_binary: raw little-endian values, C order"
    return described


def read_manifest(root: Location) -> Manifest:
    """The manifest at ``root``, or a DatasetError saying what to do."""
    loc = root.join(MANIFEST_NAME)
    try:
        text = loc.read_bytes().decode()
    except FileNotFoundError:
        raise DatasetError(
            f"no {MANIFEST_NAME} at {root.uri}: not an mpmae dataset, or a conversion that "
            "did not finish. Create one with `mpmae data synth` or re-run `mpmae data convert`."
        ) from None
    return Manifest.from_json(text, where=loc.uri)


def write_manifest(root: Location, manifest: Manifest) -> None:
    root.join(MANIFEST_NAME).write_bytes_atomic(manifest.to_json().encode())
