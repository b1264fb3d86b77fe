"""Evaluating encoders on labelled downstream sets: ``mpmae evaluate`` and the names other
wings use (import them from here, not from the rooms inside). Each loads on first use, so
``import mpmae.evaluate`` stays light (no torch) for the command line's help."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mpmae.lazy import lazy_getattr

if TYPE_CHECKING:  # for type checkers and the import rules; at run time, __getattr__
    from mpmae.evaluate.command.compare import compare as compare
    from mpmae.evaluate.command.encoders import open_encoder as open_encoder
    from mpmae.evaluate.command.main import evaluate_arguments as evaluate_arguments
    from mpmae.evaluate.command.plan import check_datasets as check_datasets
    from mpmae.evaluate.command.plan import dataset_metric as dataset_metric
    from mpmae.evaluate.command.plan import open_dataset as open_dataset
    from mpmae.evaluate.command.plan import unsupported_dataset as unsupported_dataset
    from mpmae.evaluate.command.run import evaluate as evaluate
    from mpmae.evaluate.config import EvaluateConfig as EvaluateConfig
    from mpmae.evaluate.config import KnnConfig as KnnConfig
    from mpmae.evaluate.config import LinearConfig as LinearConfig
    from mpmae.evaluate.config import LogisticConfig as LogisticConfig
    from mpmae.evaluate.protocols.frozen import METRICS as METRICS
    from mpmae.evaluate.reports.result_row import ResultRow as ResultRow
    from mpmae.evaluate.reports.results import Cell as Cell
    from mpmae.evaluate.reports.results import CellKey as CellKey
    from mpmae.evaluate.reports.results import cells as cells
    from mpmae.evaluate.reports.tracking import downstream_key as downstream_key

# Each name above and the module that defines it.
_HOMES = {
    "compare": "mpmae.evaluate.command.compare",
    "open_encoder": "mpmae.evaluate.command.encoders",
    "evaluate_arguments": "mpmae.evaluate.command.main",
    "check_datasets": "mpmae.evaluate.command.plan",
    "dataset_metric": "mpmae.evaluate.command.plan",
    "open_dataset": "mpmae.evaluate.command.plan",
    "unsupported_dataset": "mpmae.evaluate.command.plan",
    "evaluate": "mpmae.evaluate.command.run",
    "EvaluateConfig": "mpmae.evaluate.config",
    "KnnConfig": "mpmae.evaluate.config",
    "LinearConfig": "mpmae.evaluate.config",
    "LogisticConfig": "mpmae.evaluate.config",
    "METRICS": "mpmae.evaluate.protocols.frozen",
    "ResultRow": "mpmae.evaluate.reports.result_row",
    "Cell": "mpmae.evaluate.reports.results",
    "CellKey": "mpmae.evaluate.reports.results",
    "cells": "mpmae.evaluate.reports.results",
    "downstream_key": "mpmae.evaluate.reports.tracking",
}
__all__ = sorted(_HOMES)

__getattr__ = lazy_getattr(__name__, _HOMES)
