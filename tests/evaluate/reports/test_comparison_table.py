"""The comparison table from result rows: encoders as rows, datasets as columns, the best
per column, GEO-Bench's normalised column; its CSV and figures."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from PIL import Image

from mpmae.evaluate.reports.comparison_table import (
    NORMALISED,
    comparison,
    comparison_csv,
    comparison_figure,
    comparison_text,
)
from mpmae.evaluate.reports.label_efficiency import curves, curves_figure
from mpmae.evaluate.reports.normalised_score import Bounds
from mpmae.evaluate.reports.result_row import ResultRow


def _rows(encoder: str, dataset: str, values: list[float], partition: str = "default",
          metric: str = "accuracy", protocol: str = "linear",
          recipe: str = "mmearth-linear") -> list[ResultRow]:
    """One row per seed; each seed's interval is its value ± 0.02."""
    return [ResultRow(encoder, dataset, protocol, partition, seed, metric, value,
                      (value - 0.02, value + 0.02), 10, 3, {}, "8x8", "dataset band_stats.json",
                      recipe=recipe)
            for seed, value in enumerate(values)]


ROWS = (_rows("random:atto", "m-eurosat", [0.90, 0.92])
        + _rows("random:atto", "m-bigearthnet", [0.70, 0.60], metric="f1_micro")
        + _rows("demo-1", "m-eurosat", [0.95, 0.97])
        + _rows("demo-1", "m-bigearthnet", [0.50, 0.54], metric="f1_micro"))
BOUNDS = {"m-eurosat": Bounds(0.9, 1.0), "m-bigearthnet": Bounds(0.5, 0.7)}


def test_cells_are_means_over_seeds_and_the_best_per_column_is_marked():
    [section] = comparison(ROWS, {})

    assert (section.protocol, section.partition) == ("linear", "default")
    assert list(section.entries) == ["random:atto", "demo-1"]  # the order evaluated
    assert section.columns == ["m-bigearthnet", "m-eurosat"]  # no bounds: no extra column
    atto, demo = section.entries["random:atto"], section.entries["demo-1"]
    assert demo["m-eurosat"].mean == pytest.approx(0.96)
    assert demo["m-eurosat"].seed_std == pytest.approx(np.std([0.95, 0.97], ddof=1))
    assert demo["m-eurosat"].ci95 == pytest.approx((0.94, 0.98))
    assert demo["m-eurosat"].best and not atto["m-eurosat"].best
    assert atto["m-bigearthnet"].best and not demo["m-bigearthnet"].best


def test_an_error_metric_is_best_lowest_and_shown_as_it_is():
    rows = (_rows("random:atto", "biomassters", [0.40, 0.44], metric="rmse")
            + _rows("demo-1", "biomassters", [0.30, 0.34], metric="rmse"))
    [section] = comparison(rows, {})
    assert section.entries["demo-1"]["biomassters"].best  # 0.32 RMSE beats 0.42
    assert not section.entries["random:atto"]["biomassters"].best
    text = comparison_text([section])
    assert "0.320 ±0.028 [0.300, 0.340]*" in text and "32.0" not in text


def test_the_normalised_column_averages_geobench_scores_over_the_named_datasets():
    [section] = comparison(ROWS, {**BOUNDS, "m-so2sat": Bounds(0.4, 0.6)})

    assert section.columns[-1] == NORMALISED
    assert section.normalised_over == ("m-bigearthnet", "m-eurosat")
    atto = section.entries["random:atto"][NORMALISED]
    # eurosat 0.91 → 0.1, bigearthnet 0.65 → 0.75; per seed (0.0+1.0)/2, (0.2+0.5)/2
    assert atto.mean == pytest.approx((0.1 + 0.75) / 2)
    assert atto.seed_std == pytest.approx(np.std([0.5, 0.35], ddof=1))
    assert atto.ci95 == pytest.approx(((-0.1 + 0.65) / 2, (0.3 + 0.85) / 2))
    demo = section.entries["demo-1"][NORMALISED]
    assert demo.mean == pytest.approx((0.6 + 0.1) / 2)
    assert atto.best and not demo.best
    [only_eurosat] = comparison(ROWS, {"m-eurosat": BOUNDS["m-eurosat"]})
    assert only_eurosat.entries["demo-1"][NORMALISED].mean == pytest.approx(0.6)


def test_the_text_shows_percent_cells_marks_and_the_legend():
    text = comparison_text(comparison(ROWS, BOUNDS))
    header, atto, demo = text.splitlines()[:3]

    assert header.split()[:3] == ["linear", "/", "default"]
    assert header.index("m-bigearthnet") < header.index("m-eurosat") < header.index(NORMALISED)
    assert atto.startswith("random:atto") and demo.startswith("demo-1")
    assert "96.0 ±1.4 [94.0, 98.0]*" in demo and "91.0 ±1.4 [89.0, 93.0] " in atto
    assert "65.0 ±7.1 [63.0, 67.0]*" in atto and "42.5" in atto  # normalised, x100
    legend = text.splitlines()[-1]
    assert "m-bigearthnet f1_micro, m-eurosat accuracy" in legend
    assert "* best in its column" in legend and "mean over m-bigearthnet, m-eurosat" in legend


def test_one_table_per_partition_and_a_missing_cell_is_a_dash():
    rows = ROWS + _rows("random:atto", "m-eurosat", [0.5, 0.6], partition="0.01x_train")
    sections = comparison(rows, {})

    assert [s.partition for s in sections] == ["default", "0.01x_train"]
    text = comparison_text(sections)
    assert "linear / 0.01x_train" in text
    few_labels = text.split("linear / 0.01x_train")[1].splitlines()
    assert few_labels[2].startswith("demo-1") and few_labels[2].split()[-1] == "—"


def test_recipes_never_share_a_column_and_each_table_names_its_own():
    """The same features under MMEarth's recipe and the converged probe: two tables, each
    averaging only its own recipe's rows."""
    logistic = _rows("demo-1", "m-eurosat", [0.5], protocol="logistic",
                     recipe="lbfgs-logistic")
    linear, converged = comparison(_rows("demo-1", "m-eurosat", [0.3, 0.34]) + logistic, {})

    assert (linear.protocol, linear.recipes) == ("linear", ("mmearth-linear",))
    assert (converged.protocol, converged.recipes) == ("logistic", ("lbfgs-logistic",))
    assert linear.entries["demo-1"]["m-eurosat"].mean == pytest.approx(0.32)
    assert converged.entries["demo-1"]["m-eurosat"].mean == pytest.approx(0.5)
    text = comparison_text([linear, converged])
    assert "linear / default (mmearth-linear)" in text
    assert "logistic / default (lbfgs-logistic)" in text
    found = list(csv.DictReader(io.StringIO(comparison_csv([linear, converged]))))
    assert [(r["protocol"], r["recipe"], r["m-eurosat"]) for r in found] == [
        ("linear", "mmearth-linear", "0.32"), ("logistic", "lbfgs-logistic", "0.5")]


def test_the_csv_is_the_table_in_fractions():
    found = list(csv.DictReader(io.StringIO(comparison_csv(comparison(ROWS, BOUNDS)))))

    assert [(r["protocol"], r["partition"], r["encoder"]) for r in found] == [
        ("linear", "default", "random:atto"), ("linear", "default", "demo-1")]
    demo = found[1]
    assert float(demo["m-eurosat"]) == pytest.approx(0.96)
    assert float(demo["m-eurosat ci95_low"]) == pytest.approx(0.94)
    assert demo["m-eurosat best"] == "True" and demo["m-bigearthnet best"] == "False"
    assert float(demo[NORMALISED]) == pytest.approx(0.35)


def _colour_pixels(png: bytes, colour: tuple[int, int, int]) -> int:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    return int((np.abs(pixels - np.array(colour)).sum(-1) < 30).sum())


BLUE, ORANGE = (31, 119, 180), (255, 127, 14)  # C0, C1


def test_the_figure_draws_a_bar_per_encoder_and_dataset():
    png = comparison_figure(comparison(ROWS, BOUNDS))

    assert Image.open(io.BytesIO(png)).format == "PNG"
    assert _colour_pixels(png, BLUE) > 200 and _colour_pixels(png, ORANGE) > 200


def test_a_dataset_s_label_efficiency_figure_has_a_line_per_encoder():
    rows = ROWS + _rows("random:atto", "m-eurosat", [0.3, 0.4], partition="0.01x_train") \
        + _rows("demo-1", "m-eurosat", [0.6, 0.7], partition="0.01x_train")
    found = curves(rows)

    assert set(found) == {("random:atto", "linear", "m-eurosat"),
                          ("demo-1", "linear", "m-eurosat")}
    png = curves_figure(found)
    assert _colour_pixels(png, BLUE) > 50 and _colour_pixels(png, ORANGE) > 50
