"""The encoder as a product: a release folder anyone can load with torch alone.

    model.safetensors   encoder weights
    config.json         architecture (size, stem, patch, in_chans), input bands in order,
                        normalisation statistics, format version, free metadata
    README.md           model card

No Ray, no MLflow: ``mpmae.load_encoder(path)``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from mpmae.errors import MpmaeError
from mpmae.model.convnextv2 import ConvNeXtV2Encoder, EncoderConfig
from mpmae.storage import Location, StorageOptions, resolve
from mpmae.version import __version__

RELEASE_FORMAT = "mpmae-encoder"
RELEASE_FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
# Where a pretraining run (or sweep trial) keeps its release, inside the run's folder.
RELEASE_DIR = "encoder"
REQUIRED_METADATA = ("input_bands", "normalisation")


class ReleaseFolderError(MpmaeError, ValueError):
    """A release folder, or the metadata given to write one, is missing or wrong."""


class ReleaseNotFoundError(ReleaseFolderError, FileNotFoundError):
    """The path holds no release folder (a FileNotFoundError too, for existing callers)."""


def save_encoder(
    encoder: ConvNeXtV2Encoder, path: str | Path, *, metadata: Mapping[str, Any]
) -> Path:
    """Write a release folder for ``encoder`` and return its path.

    ``metadata`` must hold ``input_bands`` (band names in input-channel order) and
    ``normalisation`` (the statistics that turn raw values into the encoder's input, e.g.
    ``{"mean": [...], "std": [...]}``); ``model_card`` (markdown) replaces the generated
    README; any other JSON-able keys are kept under ``metadata``.
    """
    missing = [k for k in REQUIRED_METADATA if k not in metadata]
    if missing:
        raise ReleaseFolderError(f"release metadata lacks {missing}: a user cannot prepare "
                                 "inputs without them")
    bands = list(metadata["input_bands"])
    if len(bands) != encoder.config.in_chans:
        raise ReleaseFolderError(
            f"{len(bands)} input_bands given for an encoder with {encoder.config.in_chans} inputs"
        )
    extra = {k: v for k, v in metadata.items() if k not in (*REQUIRED_METADATA, "model_card")}
    config = {
        "format": RELEASE_FORMAT,
        "format_version": RELEASE_FORMAT_VERSION,
        "mpmae_version": __version__,
        "architecture": "convnextv2",
        **asdict(encoder.config),
        "embedding_dim": encoder.num_features,
        "input_bands": bands,
        "normalisation": metadata["normalisation"],
        "metadata": extra,
    }
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    save_file(weights, str(folder / WEIGHTS_FILE), metadata={"format": RELEASE_FORMAT})
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=_as_list) + "\n")
    (folder / CARD_FILE).write_text(metadata.get("model_card") or model_card(config))
    return folder


def _as_list(value: Any) -> list:
    """JSON fallback for numpy arrays and tensors in the metadata (e.g. band statistics)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"release metadata value {value!r} is not JSON-serialisable")


def read_release_config(path: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a release folder, checked for format and version."""
    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise ReleaseNotFoundError(f"{file} not found: is {path} an mpmae encoder release folder?")
    try:
        config = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise ReleaseFolderError(f"{file} is not valid JSON ({e}): the release folder is "
                                 "damaged; copy or download it again") from None
    if not isinstance(config, dict) or config.get("format") != RELEASE_FORMAT:
        raise ReleaseFolderError(f"{file} is not an {RELEASE_FORMAT} config: point at a release "
                                 "folder, such as the encoder/ folder of a pretraining run")
    if config.get("format_version", 0) > RELEASE_FORMAT_VERSION:
        raise ReleaseFolderError(
            f"release format {config['format_version']} is newer than this mpmae "
            f"({RELEASE_FORMAT_VERSION}); upgrade mpmae to load it"
        )
    return config


def load_encoder(path: str | Path, device: str = "cpu",
                 storage: StorageOptions | None = None) -> ConvNeXtV2Encoder:
    """Rebuild an encoder from a release folder, in eval mode: a local folder, or
    ``s3://BUCKET/…/encoder`` (what a run on an S3 storage root exports), read with
    ``storage`` (default: endpoint and credentials from ``AWS_*``) into a temporary folder.

    The release config (bands, normalisation, metadata) is attached as ``release_config``.
    """
    if str(path).startswith("s3://"):
        return _load_stored(resolve(str(path), storage), device)
    config = read_release_config(path)
    fields = EncoderConfig.__dataclass_fields__
    encoder = ConvNeXtV2Encoder(EncoderConfig(**{k: config[k] for k in fields if k in config}))
    encoder.load_state_dict(load_file(str(Path(path) / WEIGHTS_FILE), device=device))
    encoder.release_config = config
    return encoder.to(device).eval()


def _load_stored(release: Location, device: str) -> ConvNeXtV2Encoder:
    if not release.join(CONFIG_FILE).exists():
        raise ReleaseNotFoundError(f"{release.uri}/{CONFIG_FILE} not found: is {release.uri} "
                                   "an mpmae encoder release folder?")
    with tempfile.TemporaryDirectory(prefix="mpmae-encoder-") as tmp:
        return load_encoder(release.download(Path(tmp)), device)


def model_card(config: Mapping[str, Any]) -> str:
    """A short README for a release folder."""
    bands = ", ".join(config["input_bands"])
    return _card_head(config, bands) + _card_choices(config.get("metadata", {}))


def _card_choices(metadata: Mapping[str, Any]) -> str:
    """The pretraining choices recorded in the metadata (``pretraining``: key → text)."""
    choices = metadata.get("pretraining") or {}
    if not choices:
        return ""
    lines = "".join(f"- `{key}` = {text}\n" for key, text in choices.items())
    return f"\n## How it was pretrained\n\n{lines}"


def _card_head(config: Mapping[str, Any], bands: str) -> str:
    return f"""# MP-MAE encoder: ConvNeXt V2 {config["size"]}

Pretrained with the Multi-Pretext Masked Autoencoder of MMEarth (arXiv 2405.02771).

- stem: `{config["stem"]}`, patch size {config["patch_size"]} (one output cell per patch)
- input: {config["in_chans"]} channels, in this order: {bands}
- normalisation: see `normalisation` in `config.json` (apply before the encoder; missing → 0)
- written by mpmae {config["mpmae_version"]}, release format {config["format_version"]}

```python
import mpmae

encoder = mpmae.load_encoder("path/to/this/folder")
features = encoder.forward_features(x)  # per-stage maps
embedding = encoder.embed(x)            # (B, {config["embedding_dim"]}) pooled
```
"""
