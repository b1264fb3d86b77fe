"""What ``mpmae evaluate ENCODER`` can name, opened as a frozen encoder with its bands.

- a release folder (``model.safetensors`` + ``config.json``), local or on S3
  (``s3://BUCKET/runs/RUN/encoder``, what ``mpmae pretrain`` exports to an S3 storage root;
  read with the storage settings: endpoint and credentials from the config or ``AWS_*``);
- an MLflow model URI (``models:/mpmae-encoder/3``, ``models:/NAME@alias``, ``runs:/ID/encoder``);
- a pretraining run name (its ``encoder/`` release under the storage root);
- ``random:SIZE`` or ``random:SIZE:SEED``: a random-init encoder of that size and our
  Sentinel-2 input bands drawn with seed SEED (default 0), the baseline every pretrained
  encoder should beat; several seeds show how much the baseline itself varies.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mpmae.config import ConfigError, runs_dir
from mpmae.modalities import S2_INPUT_BANDS
from mpmae.model import ENCODER_SIZES, ConvNeXtV2Encoder, build_encoder, load_encoder
from mpmae.model.release import CONFIG_FILE, RELEASE_DIR, WEIGHTS_FILE, ReleaseFolderError
from mpmae.storage import Location, StorageOptions, resolve
from mpmae.track.run_folder import read_run_file

RANDOM_PREFIX = "random:"
S3_PREFIX = "s3://"


@dataclass
class Encoder:
    """A frozen encoder and what a downstream reader needs to feed it."""

    name: str
    module: ConvNeXtV2Encoder
    input_bands: tuple[str, ...]
    normalisation: dict[str, Any] | None  # None: only the dataset's statistics apply
    tags: dict[str, str] = field(default_factory=dict)  # where it came from, for MLflow


def open_encoder(spec: str, *, runs_root: str = "", storage: StorageOptions | None = None,
                 tracking_uri: str | None = None) -> Encoder:
    """The encoder ``spec`` names (see the module docstring), in eval mode on the CPU."""
    if spec.startswith(RANDOM_PREFIX):
        return _random(spec)
    if spec.startswith(("models:/", "runs:/")):
        return _from_mlflow(spec, tracking_uri)
    if spec.startswith(S3_PREFIX):
        return _from_store(spec, storage)
    if Path(spec, CONFIG_FILE).is_file():
        return _from_release(spec, load_encoder(spec), {"mpmae.encoder_source": "folder"})
    return _from_run(spec, runs_root or str(runs_dir()), storage)


def _random(spec: str) -> Encoder:
    size, _, seed = spec.removeprefix(RANDOM_PREFIX).partition(":")
    if size not in ENCODER_SIZES:
        raise ConfigError(f"unknown encoder size {size!r} in {spec!r}; choose from "
                          f"{', '.join(RANDOM_PREFIX + s for s in ENCODER_SIZES)}")
    if seed and not seed.isdigit():
        raise ConfigError(f"the seed in {spec!r} must be a whole number, as in "
                          f"{RANDOM_PREFIX}{size}:1")
    torch.manual_seed(int(seed or 0))  # the same baseline for the same spec, every time
    module = build_encoder(size, in_chans=len(S2_INPUT_BANDS)).eval()
    return Encoder(spec, module, S2_INPUT_BANDS, None, {"mpmae.encoder_source": "random"})


def _from_release(name: str, module: ConvNeXtV2Encoder, tags: dict[str, str]) -> Encoder:
    config = module.release_config
    return Encoder(name, module, tuple(config["input_bands"]), config["normalisation"], tags)


def _from_mlflow(uri: str, tracking_uri: str | None) -> Encoder:
    import mlflow

    from mpmae.track.registry import download_encoder

    tags = {"mpmae.encoder_source": uri}
    name, _, version = uri.removeprefix("models:/").partition("/")
    if uri.startswith("models:/") and version.isdigit():  # not an alias or a stage
        found = mlflow.MlflowClient(tracking_uri=tracking_uri).get_model_version(name, version)
        tags |= {"mpmae.encoder_version": str(found.version),
                 "mpmae.encoder_run_id": found.run_id or ""}
    elif uri.startswith("runs:/"):
        tags["mpmae.encoder_run_id"] = uri.removeprefix("runs:/").split("/")[0]
    folder = download_encoder(uri, tempfile.mkdtemp(prefix="mpmae-encoder-"),
                              tracking_uri=tracking_uri)
    return _from_release(uri, load_encoder(folder), tags)


def _from_run(name: str, runs_root: str, storage: StorageOptions | None) -> Encoder:
    run_dir = resolve(runs_root, storage).join(name)
    release = run_dir.join(RELEASE_DIR)
    if not release.join(CONFIG_FILE).exists():
        raise ConfigError(
            f"{name!r} is neither an encoder release folder, an MLflow model URI, "
            f"random:SIZE, nor a finished run in {runs_root} ({release.uri} holds no "
            "release): pass one of those")
    tags = {"mpmae.encoder_source": release.uri,
            "mpmae.encoder_run_id": read_run_file(run_dir).get("mlflow_run_id", "")}
    return _from_release(name, _load_stored(release), tags)


def _from_store(uri: str, storage: StorageOptions | None) -> Encoder:
    release = resolve(uri, storage)
    if not release.join(CONFIG_FILE).exists():
        raise ConfigError(
            f"{release.uri} holds no encoder release ({CONFIG_FILE} not found): pass the "
            f"{RELEASE_DIR}/ folder of a pretraining run, e.g. s3://BUCKET/RUNS/RUN/"
            f"{RELEASE_DIR}, or the run's name with storage.root=s3://BUCKET/RUNS")
    return _from_release(uri, _load_stored(release), {"mpmae.encoder_source": release.uri})


def _load_stored(release: Location) -> ConvNeXtV2Encoder:
    """The release at ``release`` (its config.json known to exist), copied into a
    temporary folder and loaded there; what is wrong with it is named by its URI, not by
    the temporary copy. Weights are safetensors: reading them runs no code."""
    from safetensors import SafetensorError

    if not release.join(WEIGHTS_FILE).exists():
        raise ConfigError(f"{release.uri} holds {CONFIG_FILE} but no {WEIGHTS_FILE}: the "
                          "release is incomplete (an export that did not finish?); export "
                          "it again or pass another encoder")
    with tempfile.TemporaryDirectory(prefix="mpmae-encoder-") as tmp:
        local = release.download(Path(tmp))
        try:
            return load_encoder(local)
        except ReleaseFolderError as e:
            raise ReleaseFolderError(str(e).replace(str(local), release.uri)) from None
        except SafetensorError as e:
            raise ConfigError(f"{release.uri}/{WEIGHTS_FILE} is not a readable safetensors "
                              f"file ({e}): the release is damaged; export or copy it "
                              "again") from None
