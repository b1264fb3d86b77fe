"""The encoder as an MLflow product: the release folder in the run, a registered model.

At the end of training rank 0 logs the release folder (``model.safetensors``,
``config.json``, model card) as the run's ``encoder/`` artifacts and registers it under
``mlflow.register_as``. MLflow 3 registers *logged models*, so the folder is also logged as
a pyfunc model whose artifacts hold the release: ``mlflow.pyfunc.load_model(
"models:/mpmae-encoder/1")`` gives embeddings, and :func:`download_encoder` gives the plain
folder back for ``mpmae.load_encoder`` or any torch user.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import TYPE_CHECKING

from mpmae.model.release import CONFIG_FILE, ReleaseNotFoundError
from mpmae.track.server_check import shown, why_not_answering

if TYPE_CHECKING:
    from mpmae.model.config import MPMAEConfig

ENCODER_ARTIFACTS = "encoder"
# Not "encoder": MLflow 3 resolves runs:/<id>/<name> to a logged model of that name, which
# would shadow the plain release folder.
PYFUNC_NAME = "encoder-pyfunc"
RELEASE_ARTIFACT = "release"
MODEL_CODE = Path(__file__).with_name("encoder_model.py")
CARD_FILE = "README.md"
# Model version descriptions are VARCHAR(5000) in MLflow's SQL stores.
MAX_DESCRIPTION = 5000
# Pinned explicitly: MLflow would otherwise infer them by loading the model in a subprocess.
# mpmae itself is not on PyPI, so it is named in the model description, not here.
REQUIREMENTS = ("torch", "safetensors", "numpy")

_log = logging.getLogger(__name__)


def log_encoder(release_dir: str | Path, *, register_as: str, model: MPMAEConfig,
                model_card: str | None = None) -> int | None:
    """Log a release folder to the active run as ``encoder/`` (``model_card`` replaces its
    README.md) and register it as ``register_as`` (empty: don't); the new version, or
    None when registration is off or the tracking server does not answer (a warning says
    so: the release folder itself is the caller's to keep)."""
    import mlflow
    if mlflow.active_run() is None:
        raise RuntimeError("log_encoder logs into the active run: call "
                           "mpmae.track.runs.start_run first")
    try:
        return _log_and_register(Path(release_dir), register_as, model, model_card)
    except Exception:  # the server's absence shows as MLflow's or requests' errors
        uri = mlflow.get_tracking_uri()
        reason = why_not_answering(uri)
        if reason is None:
            raise
        _log.warning("MLflow at %s is not answering (%s): the encoder was not logged to run "
                     "%s nor registered; its release folder is in the run folder",
                     shown(uri), reason, mlflow.active_run().info.run_id)
        return None


def _log_and_register(release_dir: Path, name: str, model: MPMAEConfig,
                      model_card: str | None) -> int | None:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        release = _with_card(release_dir, Path(tmp) / RELEASE_ARTIFACT, model_card)
        mlflow.log_artifacts(str(release), ENCODER_ARTIFACTS)
        if not name:
            return None
        model_uri = _log_pyfunc(release)
        return _register(model_uri, name, (release / CARD_FILE).read_text(), model)


def download_encoder(model_uri: str, dst: str | Path, *, tracking_uri: str | None = None) -> Path:
    """Fetch an encoder release folder into ``dst`` and return its path.

    ``model_uri``: a registered version (``models:/mpmae-encoder/3``, or an alias
    ``models:/mpmae-encoder@best``) or a run's artifacts (``runs:/<run id>/encoder``).
    """
    import mlflow
    from mlflow.models import Model

    Path(dst).mkdir(parents=True, exist_ok=True)
    local = Path(mlflow.artifacts.download_artifacts(
        artifact_uri=model_uri, dst_path=str(dst), tracking_uri=tracking_uri))
    if (local / CONFIG_FILE).is_file():
        return local
    if (local / "MLmodel").is_file():
        flavor = Model.load(str(local / "MLmodel")).flavors.get("python_function", {})
        release = flavor.get("artifacts", {}).get(RELEASE_ARTIFACT)
        if release:
            return local / release["path"]
    raise ReleaseNotFoundError(
        f"{model_uri} holds no mpmae encoder release (no config.json, no pyfunc "
        f"'{RELEASE_ARTIFACT}' artifact): pass models:/NAME/VERSION of a model registered "
        f"by mpmae, or runs:/RUN_ID/{ENCODER_ARTIFACTS}"
    )


def _with_card(src: Path, dst: Path, model_card: str | None) -> Path:
    """A copy of the release folder with the given card (the release itself is not ours
    to modify)."""
    from mpmae.model.release import read_release_config

    read_release_config(src)  # fail before uploading anything that is not a release
    shutil.copytree(src, dst)
    if model_card is not None:
        (dst / CARD_FILE).write_text(model_card)
    return dst


def _log_pyfunc(release: Path) -> str:
    import mlflow

    with warnings.catch_warnings():
        # The signature says what goes in; a zeros example would add nothing.
        warnings.filterwarnings("ignore", message=".*input example was not provided.*")
        info = mlflow.pyfunc.log_model(
            name=PYFUNC_NAME,
            python_model=str(MODEL_CODE),
            artifacts={RELEASE_ARTIFACT: str(release)},
            signature=_signature(release),
            pip_requirements=[_pinned(p) for p in REQUIREMENTS],
        )
    return info.model_uri


def _signature(release: Path):
    """float32 (B, C, H, W) in → (B, D) embeddings out, from the release config. Unnamed
    specs: ``predict`` takes and returns plain arrays (named ones would make dicts)."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    from mpmae.model.release import read_release_config

    config = read_release_config(release)
    float32 = np.dtype("float32")
    return ModelSignature(
        inputs=Schema([TensorSpec(float32, (-1, config["in_chans"], -1, -1))]),
        outputs=Schema([TensorSpec(float32, (-1, config["embedding_dim"]))]),
    )


def _pinned(package: str) -> str:
    # Local version labels ("2.5.0+cpu") are not installable from PyPI.
    return f"{package}=={installed_version(package).split('+')[0]}"


def _register(model_uri: str, name: str, card: str, model: MPMAEConfig) -> int:
    """A new version carrying the card as its description and tags to filter by."""
    import mlflow

    from mpmae.track.runs import model_tags

    version = mlflow.register_model(model_uri, name, tags=model_tags(model)).version
    if len(card) > MAX_DESCRIPTION:
        card = card[: MAX_DESCRIPTION - 60] + f"\n\n… (full card: {ENCODER_ARTIFACTS}/{CARD_FILE})"
    client = mlflow.MlflowClient()
    client.update_model_version(name, version, description=card)
    if not client.get_registered_model(name).description:
        client.update_registered_model(name, description=(
            "MP-MAE encoders pretrained with mpmae. Needs the mpmae package: "
            "`mlflow.pyfunc.load_model(uri)` gives embeddings; "
            "`mpmae.track.registry.download_encoder(uri, dst)` the release folder for "
            "`mpmae.load_encoder`."))
    return int(version)
