"""Typed result rows written as users' files hold them: results.json and results.csv keep
their field names and order, for a frozen protocol and for a fine-tuned cell."""

from __future__ import annotations

import json

import pytest

from mpmae.evaluate.reports.result_row import ResultRow
from mpmae.evaluate.reports.results import cells, to_csv, to_json

FROZEN = ResultRow("random:atto", "m-eurosat", "logistic", "default", 1, "accuracy", 0.75,
                   (0.7, 0.8), 20, 10, {"B10": "B11"}, "64x64", "dataset band_stats.json",
                   recipe="lbfgs-logistic", details={"l2": 0.01, "iterations": 42})
FINETUNED = ResultRow("demo-1", "m-cashew", "finetune", "0.10x_train", 0, "miou", 0.5,
                      (0.4, 0.6), 5, 10, {}, "32x32", "encoder pretraining statistics",
                      best_val=None, per_class_iou=(0.9, None), epochs=3,
                      resumed_from_epoch=1, workers=2, cell="/cells/abc",
                      recipe="mmearth-unet-finetune")


def test_json_keeps_the_keys_in_their_order():
    [frozen, finetuned] = json.loads(to_json([FROZEN, FINETUNED]))["results"]
    head = ["encoder", "dataset", "protocol", "partition", "seed", "metric", "value", "ci95"]
    tail = ["n_train", "n_test", "bands_filled", "input_size", "normalisation", "recipe"]
    assert list(frozen) == [*head, *tail, "details"]
    assert list(finetuned) == [*head, "best_val", "epochs", "resumed_from_epoch", "workers",
                               "per_class_iou", "cell", *tail]
    assert frozen["ci95"] == [0.7, 0.8] and frozen["bands_filled"] == {"B10": "B11"}
    assert frozen["recipe"] == "lbfgs-logistic" and frozen["details"]["l2"] == 0.01
    assert finetuned["recipe"] == "mmearth-unet-finetune"
    assert finetuned["best_val"] is None and finetuned["per_class_iou"] == [0.9, None]


def test_a_classification_cell_has_no_per_class_iou():
    classified = ResultRow(**{**vars(FINETUNED), "per_class_iou": None})
    assert "per_class_iou" not in classified.to_dict()


def test_csv_columns_and_cells():
    lines = to_csv([FROZEN, FINETUNED]).splitlines()
    assert lines[0] == ("encoder,dataset,protocol,partition,seed,metric,value,ci95,n_train,"
                        "n_test,bands_filled,input_size,normalisation,best_val,per_class_iou,"
                        "epochs,resumed_from_epoch,workers,cell,recipe,details")
    assert lines[1] == ('random:atto,m-eurosat,logistic,default,1,accuracy,0.75,"[0.7, 0.8]",'
                        '20,10,"{""B10"": ""B11""}",64x64,dataset band_stats.json,,,,,,,'
                        'lbfgs-logistic,"{""l2"": 0.01, ""iterations"": 42}"')
    assert lines[2].endswith('encoder pretraining statistics,null,"[0.9, null]",3,1,2,'
                             '/cells/abc,mmearth-unet-finetune,')


def test_cells_are_read_by_name():
    other_seed = ResultRow(**{**vars(FROZEN), "seed": 2, "value": 0.85, "ci95": (0.8, 0.9)})
    [(key, cell)] = cells([FROZEN, other_seed]).items()
    assert (key.encoder, key.protocol, key.partition, key.dataset) == (
        "random:atto", "logistic", "default", "m-eurosat")
    assert cell.metric == "accuracy" and cell.seeds == 2
    assert cell.mean == pytest.approx(0.8) and cell.ci95 == pytest.approx((0.75, 0.85))
