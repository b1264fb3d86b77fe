"""What every Ray Train worker is handed: the resolved run, typed, resolved once."""

from __future__ import annotations

from dataclasses import dataclass

from mpmae.data.format.manifest import Manifest
from mpmae.data.stream.retry_tally import RetryTally
from mpmae.storage import Location
from mpmae.train.config import PretrainConfig


@dataclass(frozen=True)
class WorkerSpec:
    """The resolved config, the dataset (its manifest carries the band statistics), the
    run's folder and MLflow run, and the step plan. Locations carry their storage options
    (credentials included), so they travel here, never in the logged config."""

    cfg: PretrainConfig
    data_root: Location
    manifest: Manifest
    run_dir: Location
    mlflow_run_id: str
    total_steps: int
    steps_per_epoch: int
    retry_tally: RetryTally | None = None  # the read tasks' storage retries, summed

    @property
    def stats(self) -> dict:
        return self.manifest.stats
