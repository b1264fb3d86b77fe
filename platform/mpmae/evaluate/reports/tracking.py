"""MLflow for an evaluation: one run per encoder, a nested run per (dataset, protocol,
partition) with its scores, the results as artifacts, and a link both ways to the
encoder's pretraining run when it came from one (its downstream scores appear beside its
training metrics)."""

from __future__ import annotations

import datetime as dt
import logging
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mpmae.config import flatten, run_stamp
from mpmae.errors import Preempted
from mpmae.evaluate.command.encoders import Encoder
from mpmae.evaluate.config import EvaluateConfig
from mpmae.evaluate.reports.label_efficiency import curves, curves_figure
from mpmae.evaluate.reports.result_row import ResultRow
from mpmae.evaluate.reports.results import bar_figure, cells, to_csv, to_json
from mpmae.track.runs import experiment_id, tracking_uri

EXPERIMENT = "mpmae-evaluate"
_log = logging.getLogger(__name__)
PARENT_TAG = "mlflow.parentRunId"
RESULTS_DIR = "results"
LABEL_EFFICIENCY_FIGURE = "label_efficiency.png"


@contextmanager
def evaluation_run(cfg: EvaluateConfig, encoder: Encoder, datasets: list[str],
                   nested: bool = False) -> Iterator[str]:
    """The encoder's evaluation run (active while the block runs; ``nested``: under the
    active comparison run); yields its id."""
    import mlflow

    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", encoder.name).strip("-")[-60:]
    run = mlflow.start_run(experiment_id=evaluation_experiment(cfg),
                           run_name=f"eval-{slug}-{run_stamp()}", nested=nested,
                           tags={**encoder.tags, "mpmae.encoder": encoder.name,
                                 "mpmae.datasets": ",".join(datasets)})
    with ending_active_run():
        mlflow.log_params({**flatten(cfg), "encoder": encoder.name})
        yield run.info.run_id


def evaluation_experiment(cfg: EvaluateConfig) -> str:
    """The evaluations' experiment id, on the configured server (now the tracking URI)."""
    import mlflow

    uri = tracking_uri(cfg.mlflow)
    mlflow.set_tracking_uri(uri)
    return experiment_id(mlflow.MlflowClient(), cfg.mlflow.experiment or EXPERIMENT, uri)




@contextmanager
def ending_active_run() -> Iterator[None]:
    """Ends the active run with the block: FINISHED, FAILED, or KILLED by Ctrl-C or a
    preemption."""
    import mlflow

    try:
        yield
    except (KeyboardInterrupt, Preempted):
        mlflow.end_run("KILLED")
        raise
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    mlflow.end_run("FINISHED")


def log_cell(parent_id: str, rows: list[ResultRow]) -> None:
    """A nested run for one (dataset, protocol, partition): every seed's score as a step,
    the mean over seeds and the mean interval as metrics, the recipe as parameters."""
    import mlflow
    from mlflow.entities import Metric, Param

    client = mlflow.MlflowClient()
    first = rows[0]
    name = f"{first.dataset}-{first.protocol}-{first.partition}"
    child = client.create_run(client.get_run(parent_id).info.experiment_id, run_name=name,
                              tags={PARENT_TAG: parent_id})
    metric, now = first.metric, int(dt.datetime.now().timestamp() * 1000)
    [cell] = cells(rows).values()
    metrics = [Metric(f"{metric}_per_seed", r.value, now, r.seed) for r in rows]
    metrics += [Metric(metric, cell.mean, now, 0),
                Metric(f"{metric}_ci95_low", cell.ci95[0], now, 0),
                Metric(f"{metric}_ci95_high", cell.ci95[1], now, 0)]
    params = [Param(k, str(getattr(first, k)))
              for k in ("dataset", "protocol", "partition", "n_train", "n_test", "bands_filled",
                        "input_size", "normalisation", "recipe")]
    # What the recipe settled on (the logistic fit's L2, the linear head's steps), as the
    # first seed's row says; a seed's own is in results.json.
    params += [Param(f"recipe.{k}", str(v)) for k, v in (first.details or {}).items()]
    client.log_batch(child.info.run_id, metrics=metrics, params=params)
    client.set_terminated(child.info.run_id)


def log_results(rows: list[ResultRow]) -> None:
    """results.json, results.csv, the bar figure and, when a dataset was scored at more
    than one fraction of its training labels, the label-efficiency curves on the active
    evaluation run."""
    import mlflow

    mlflow.log_text(to_json(rows), f"{RESULTS_DIR}/results.json")
    mlflow.log_text(to_csv(rows), f"{RESULTS_DIR}/results.csv")
    figures = {"scores.png": bar_figure(rows)}
    if found := curves(rows):
        figures[LABEL_EFFICIENCY_FIGURE] = curves_figure(found)
    log_pngs(figures)


def log_pngs(figures: dict[str, bytes]) -> None:
    """Each PNG, by name, into the active run's ``results/``."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        for name, png in figures.items():
            (Path(tmp) / name).write_bytes(png)
            mlflow.log_artifact(str(Path(tmp) / name), RESULTS_DIR)


def log_png(png: bytes, name: str) -> None:
    """A figure on the active evaluation run, under ``results/``."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / name).write_bytes(png)
        mlflow.log_artifact(str(Path(tmp) / name), RESULTS_DIR)


def downstream_key(dataset: str, protocol: str, partition: str, metric: str) -> str:
    """The metric name a pretraining run carries a downstream score under."""
    return f"downstream/{dataset}/{protocol}/{partition}/{metric}"


def link_pretraining_run(encoder: Encoder, eval_run_id: str,
                         rows: list[ResultRow]) -> None:
    """On the encoder's pretraining run: the downstream means as ``downstream/…`` metrics
    and the evaluation run's id as a tag."""
    import mlflow
    from mlflow.entities import Metric
    from mlflow.exceptions import MlflowException

    run_id = encoder.tags.get("mpmae.encoder_run_id")
    if not run_id:
        return
    client = mlflow.MlflowClient()
    now = int(dt.datetime.now().timestamp() * 1000)
    metrics = [Metric(downstream_key(key.dataset, key.protocol, key.partition, cell.metric),
                      cell.mean, now, 0)
               for key, cell in cells(rows).items()]
    try:
        client.log_batch(run_id, metrics=metrics)
        client.set_tag(run_id, "mpmae.evaluation_run_id", eval_run_id)
    except MlflowException as e:  # e.g. the pretraining run lives on another server
        _log.warning("could not link the scores to pretraining run %s (%s); they are on "
                     "evaluation run %s", run_id, e.message, eval_run_id)
