"""The ``mlflow`` config section: where runs are tracked and what is registered."""

from __future__ import annotations

from dataclasses import dataclass, field

from mpmae.config import doc, require


@dataclass(frozen=True)
class MlflowConfig:
    tracking_uri: str = field(default="", metadata=doc(
        "MLflow server; empty: MLFLOW_TRACKING_URI, else sqlite:///<cache>/mlflow.db"))
    experiment: str = field(default="", metadata=doc("MLflow experiment; empty: name"))
    register_as: str = field(default="mpmae-encoder", metadata=doc(
        "Registered model name for the encoder; empty: don't register"))
    system_metrics: bool = field(default=True, metadata=doc(
        "Log CPU/GPU/memory usage next to the training metrics"))

    def validate(self) -> None:
        # MLflow refuses these only when registering, at the very end of a run.
        require(not any(c in self.register_as for c in "/:") and
                self.register_as == self.register_as.strip(), "register_as",
                f"MLflow model names cannot contain '/' or ':' or edge spaces, got "
                f"{self.register_as!r}")
