"""Label-efficiency curves: the points from result rows, the figure, and its place on the
evaluation's MLflow run."""

from __future__ import annotations

import io

import mlflow
import numpy as np
import pytest
from PIL import Image

from mpmae.evaluate.reports.label_efficiency import curves, curves_figure, train_fraction
from mpmae.evaluate.reports.result_row import ResultRow
from mpmae.evaluate.reports.tracking import log_results


def _rows(dataset: str, scores: dict[str, list[float]],
          metric: str = "accuracy") -> list[ResultRow]:
    """One row per (partition, seed); each seed's interval is its value ± 0.05."""
    return [ResultRow("random:atto", dataset, "linear", partition, seed, metric, value,
                      (value - 0.05, value + 0.05), 10, 3, {}, "8x8", "dataset band_stats.json")
            for partition, values in scores.items() for seed, value in enumerate(values)]


EUROSAT = _rows("m-eurosat", {"1.00x_train": [0.9, 0.8], "0.01x_train": [0.3, 0.5],
                              "0.10x_train": [0.6, 0.7]})
BIGEARTHNET = _rows("m-bigearthnet", {"0.10x_train": [0.4], "default": [0.55]}, "f1_micro")
ONE_PARTITION = _rows("m-so2sat", {"0.10x_train": [0.2, 0.3]})


@pytest.mark.parametrize(("partition", "fraction"), [
    ("0.01x_train", 0.01), ("0.10x_train", 0.1), ("1.00x_train", 1.0), ("default", 1.0),
    ("original", None), ("0.10x_valid", None)])
def test_train_fraction_reads_geobench_partition_names(partition, fraction):
    assert train_fraction(partition) == fraction


def test_curves_order_points_by_fraction_and_skip_single_fraction_datasets():
    found = curves(EUROSAT + BIGEARTHNET + ONE_PARTITION)

    assert list(found) == [("random:atto", "linear", "m-bigearthnet"),
                           ("random:atto", "linear", "m-eurosat")]
    eurosat = found[("random:atto", "linear", "m-eurosat")]
    assert [p.fraction for p in eurosat] == [0.01, 0.1, 1.0]
    assert [p.mean for p in eurosat] == pytest.approx([0.4, 0.65, 0.85])
    assert eurosat[0].ci95 == pytest.approx((0.35, 0.45))
    assert [p.partition for p in found[("random:atto", "linear", "m-bigearthnet")]] == [
        "0.10x_train", "default"]
    assert curves(ONE_PARTITION) == {}


def test_the_figure_is_a_png_with_the_curves_drawn():
    png = curves_figure(curves(EUROSAT + BIGEARTHNET))

    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.width > 300 and image.height > 200
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    blue, orange = np.array([31, 119, 180]), np.array([255, 127, 14])  # C0, C1
    for colour in (blue, orange):  # each dataset's line is on the canvas
        assert (np.abs(pixels - colour).sum(-1) < 30).sum() > 50


@pytest.fixture
def evaluation_run(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    with mlflow.start_run() as run:
        yield run.info.run_id
    mlflow.set_tracking_uri(None)


def _artifacts(run_id: str) -> set[str]:
    return {a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "results")}


def test_several_fractions_log_the_curves_next_to_the_bar_figure(evaluation_run, tmp_path):
    log_results(EUROSAT + ONE_PARTITION)

    assert {"results/scores.png", "results/label_efficiency.png"} <= _artifacts(evaluation_run)
    local = mlflow.MlflowClient().download_artifacts(
        evaluation_run, "results/label_efficiency.png", str(tmp_path))
    assert Image.open(local).format == "PNG"


def test_one_fraction_logs_no_curves(evaluation_run):
    log_results(ONE_PARTITION)

    assert _artifacts(evaluation_run) == {"results/results.json", "results/results.csv",
                                          "results/scores.png"}
