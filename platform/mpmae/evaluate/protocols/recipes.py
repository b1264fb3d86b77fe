"""Which recipe made a result: a name for every (protocol, label kind), carried by every
result row (``recipe``), and how kNN's vote decides, said in the rows of a kNN run.

``linear`` is MMEarth's recipe (the paper's numbers need it) and ``logistic`` a probe fitted
to convergence: the same features score differently under them, most of all on small
training splits, so a row must say which one made it (docs/evaluate.md)."""

from __future__ import annotations

RECIPES = {
    ("knn", "classification"): "knn-similarity-vote",
    ("knn", "multi_label"): "knn-similarity-vote",
    ("linear", "classification"): "mmearth-linear",
    ("linear", "multi_label"): "mmearth-linear",
    ("linear", "segmentation"): "frozen-segmentation-head",
    ("linear", "regression"): "frozen-regression-head",
    ("logistic", "classification"): "lbfgs-logistic",
    ("logistic", "multi_label"): "lbfgs-logistic-ovr",
    ("finetune", "classification"): "mmearth-finetune",
    ("finetune", "multi_label"): "mmearth-finetune",
    ("finetune", "segmentation"): "mmearth-unet-finetune",
}

# How kNN turns its k neighbours into a prediction (knn.py; argmax keeps the first maximum).
KNN_VOTE = {
    "classification": "similarity-weighted sum: each of the k nearest train embeddings "
                      "(cosine) adds exp(cos / T) to its class; the largest sum wins, an "
                      "exact tie goes to the lowest class index",
    "multi_label": "similarity-weighted share: a label is predicted when the neighbours "
                   "holding it carry more than half of the summed exp(cos / T); exactly "
                   "half is not",
}


def recipe_name(protocol: str, kind: str) -> str:
    """The recipe ``protocol`` uses on a dataset of label kind ``kind``."""
    return RECIPES[(protocol, kind)]
