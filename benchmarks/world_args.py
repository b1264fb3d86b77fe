"""The options every pretraining benchmark on the synthetic world shares, and its world."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from mpmae.data.sources.synth import synthesize


def add_world_args(parser: argparse.ArgumentParser, *, steps: int, seeds: list[int],
                   downstream: int, tiles: int = 1024) -> None:
    parser.add_argument("--tiles", type=int, default=tiles, help="pretraining tiles")
    parser.add_argument("--size", type=int, default=32, help="tile side = crop side (px)")
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=seeds)
    parser.add_argument("--downstream", type=int, default=downstream,
                        help="labelled tiles (80/10/10 %% train/valid/test)")
    parser.add_argument("--work", default=None,
                        help="folder for data, runs, MLflow (default: a new temporary one)")


def prepare_world(args: argparse.Namespace, prefix: str) -> tuple[Path, Path]:
    """(work folder, world folder): the world is written on first use, then reused."""
    work = Path(args.work or tempfile.mkdtemp(prefix=prefix))
    data = work / "world"
    if not (data / "dataset.json").exists():
        synthesize(str(data), tiles=args.tiles, size=args.size, seed=0,
                   downstream_tiles=args.downstream, progress=lambda _: None)
    return work, data
