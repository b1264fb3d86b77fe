"""``mpmae evaluate ENCODER… DATASET…``, the verb's entry: one encoder is evaluated,
several are compared."""

from __future__ import annotations

from collections.abc import Callable

from mpmae.evaluate.command.arguments import split_targets
from mpmae.evaluate.command.compare import compare
from mpmae.evaluate.command.run import evaluate
from mpmae.evaluate.config import EvaluateConfig
from mpmae.evaluate.reports.result_row import ResultRow


def evaluate_arguments(arguments: list[str], cfg: EvaluateConfig,
                       progress: Callable[[str], None] = print) -> list[ResultRow]:
    """The verb's ``ENCODER… DATASET…``: one encoder is evaluated, several compared."""
    targets = split_targets(arguments)
    if len(targets.encoders) == 1:
        return evaluate(targets.encoders[0], targets.datasets, cfg, progress)
    return compare(targets.encoders, targets.datasets, cfg, progress)
