"""``mpmae import-mmearth CHECKPOINT DEST``: an authors' checkpoint → an mpmae release folder."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from mpmae.mmearth_ckpt.card import BEHAVIOUR, import_card
from mpmae.mmearth_ckpt.config import ImportConfig
from mpmae.mmearth_ckpt.errors import CheckpointError
from mpmae.mmearth_ckpt.layout import infer_architecture, remap
from mpmae.mmearth_ckpt.load import load_encoder_weights
from mpmae.mmearth_ckpt.names import CheckpointName, name_of, parse_name
from mpmae.mmearth_ckpt.stats import NO_STATS, read_stats
from mpmae.modalities import S2_BANDS, S2_INPUT_BANDS
from mpmae.model import ConvNeXtV2Encoder, EncoderConfig, save_encoder

RGB_INPUT_BANDS = ("B2", "B3", "B4")  # the authors trained their rgb models in BGR order


def import_mmearth(checkpoint: str | Path, dest: str | Path, cfg: ImportConfig | None = None,
                   progress: Callable[[str], None] = print) -> Path:
    """Write the release folder ``dest`` for an MMEarth-train FCMAE checkpoint; its path."""
    cfg = cfg or ImportConfig()
    cfg.validate()
    checkpoint, dest = Path(checkpoint), Path(dest)
    _check_dest(dest, cfg.overwrite)
    where = str(checkpoint)
    ref = load_encoder_weights(checkpoint)
    arch = infer_architecture(ref, where)
    name = cfg.name or name_of(checkpoint)
    parsed = parse_name(name)
    _check_name(parsed, arch, where)
    bands = _bands(cfg, arch, parsed)
    encoder = ConvNeXtV2Encoder(arch)
    encoder.load_state_dict(remap(ref, encoder.state_dict(), arch.stem, where))
    source = {"format": "MMEarth-train FCMAE (MinkowskiEngine)", "file": checkpoint.name,
              "sha256": _sha256(checkpoint), "name": name,
              **(parsed.as_metadata() if parsed else {})}
    metadata = {"input_bands": list(bands),
                "normalisation": read_stats(Path(cfg.stats), bands) if cfg.stats else NO_STATS,
                "source": source, "behaviour": BEHAVIOUR, "imported_by": "mpmae import-mmearth"}
    if parsed:
        metadata["pretext"] = parsed.pretext
    metadata["model_card"] = import_card(arch, metadata)
    _write_atomically(encoder, dest, metadata)
    progress(f"imported {name}: ConvNeXt V2 {arch.size}, patch {arch.patch_size}, "
             f"{arch.in_chans} bands → {dest}")
    return dest


def _check_dest(dest: Path, overwrite: bool) -> None:
    if dest.exists() and not dest.is_dir():
        raise CheckpointError(f"{dest} is a file: DEST must be a folder to create")
    if dest.is_dir() and any(dest.iterdir()) and not overwrite:
        raise CheckpointError(f"{dest} is not empty: pick another DEST or pass --overwrite")


def _check_name(parsed: CheckpointName | None, arch: EncoderConfig, where: str) -> None:
    """A standard name must describe these weights: a mislabelled file fails here."""
    if parsed is None:
        return
    says = (parsed.size, parsed.patch_size, parsed.pretext == "rgb")
    has = (arch.size, arch.patch_size, arch.in_chans == len(RGB_INPUT_BANDS))
    if says != has:
        raise CheckpointError(
            f"{where}: its name {parsed.name} says {parsed.size}, patch {parsed.patch_size}"
            f"{', rgb' if says[2] else ''} but the weights are {arch.size}, patch "
            f"{arch.patch_size}, {arch.in_chans} input channels: pass --name with the "
            "checkpoint's real name")


def _bands(cfg: ImportConfig, arch: EncoderConfig, parsed: CheckpointName | None
           ) -> tuple[str, ...]:
    bands = cfg.band_list()
    if not bands:
        bands = RGB_INPUT_BANDS if arch.in_chans == len(RGB_INPUT_BANDS) else S2_INPUT_BANDS
    if len(bands) != arch.in_chans:
        raise CheckpointError(f"the weights take {arch.in_chans} input channels but "
                              f"{len(bands)} bands are given ({', '.join(bands)}): pass "
                              f"--bands with {arch.in_chans} Sentinel-2 band names in order")
    unknown = [b for b in bands if b not in S2_BANDS]
    if unknown:
        raise CheckpointError(f"--bands {', '.join(unknown)}: not Sentinel-2 band names; "
                              f"use {', '.join(S2_BANDS)}")
    return bands


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomically(encoder: ConvNeXtV2Encoder, dest: Path, metadata: dict) -> None:
    """Build the folder beside ``dest``, then rename it in: no half-written release."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    old = None
    try:
        save_encoder(encoder, tmp, metadata=metadata)
        if dest.is_dir() and any(dest.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old.", dir=dest.parent))
            os.replace(dest, old / dest.name)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
