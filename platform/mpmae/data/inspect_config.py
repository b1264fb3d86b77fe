"""What ``mpmae data inspect`` accepts (apart from its dataset URI).

Kept apart from :mod:`mpmae.data.inspect`, which imports pyarrow and Ray Data: the CLI
imports this to build its parser on every start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mpmae.config import doc, require


@dataclass(frozen=True)
class InspectConfig:
    png: str = field(default="", metadata=doc(
        "Write a sheet of tiles to this PNG (path or s3:// URI); empty: no sheet"))
    tiles: int = field(default=4, metadata=doc("Tiles on the sheet, one row each"))

    def validate(self) -> None:
        require(self.tiles >= 1, "tiles", f"must be 1 or more, got {self.tiles}")
