"""The ``mlflow`` config section: where runs are tracked and what is registered."""

from __future__ import annotations

from dataclasses import dataclass, field

from mpmae.config import doc


@dataclass(frozen=True)
class MlflowConfig:
    tracking_uri: str = field(default="", metadata=doc(
        "MLflow server; empty: MLFLOW_TRACKING_URI, else sqlite:///<cache>/mlflow.db"))
    experiment: str = field(default="", metadata=doc("MLflow experiment; empty: name"))
    register_as: str = field(default="mpmae-encoder", metadata=doc(
        "Registered model name for the encoder; empty: don't register"))
    system_metrics: bool = field(default=True, metadata=doc(
        "Log CPU/GPU/memory usage next to the training metrics"))
