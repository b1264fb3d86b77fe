"""The search space: a TuneConfig's lists and ranges → Ray Tune's ``param_space``, and a
trial's drawn values → its pretraining config."""

from __future__ import annotations

import math
from typing import Any

from mpmae.config import override
from mpmae.modalities import resolve_pretext
from mpmae.train.config import PretrainConfig
from mpmae.tune.config import SearchConfig, TuneConfig

# Search dimension → the pretraining config key it sets.
PARAM_KEYS = {
    "pretext": "model.pretext",
    "loss_weighting": "model.loss_weighting",
    "lr": "optim.lr",
    "mask_ratio": "model.mask_ratio",
    "seed": "train.seed",
}


def param_space(search: SearchConfig) -> dict[str, Any]:
    """Ray Tune's param_space. Pretext sets travel as strings ("all", "sentinel2,aster"):
    Tune shows them readably and resolve_pretext accepts both forms."""
    from ray import tune

    values = {key: list(getattr(search, key)) for key in PARAM_KEYS}
    values["pretext"] = [_pretext_text(p) for p in search.pretext]
    if search.mode == "grid":
        return {key: tune.grid_search(v) for key, v in values.items()}
    space: dict[str, Any] = {key: tune.choice(v) for key, v in values.items()}
    if search.lr_range:
        space["lr"] = tune.loguniform(*search.lr_range)
    if search.mask_ratio_range:
        space["mask_ratio"] = tune.uniform(*search.mask_ratio_range)
    return space


def planned_trials(cfg: TuneConfig) -> int:
    """How many trials the sweep creates (before ASHA stops any)."""
    if cfg.search.mode == "random":
        return cfg.num_samples
    return cfg.num_samples * math.prod(len(getattr(cfg.search, key)) for key in PARAM_KEYS)


def trial_config(base: PretrainConfig, params: dict[str, Any]) -> PretrainConfig:
    """The base config with a trial's drawn values in place."""
    return override(base, {PARAM_KEYS[key]: value for key, value in params.items()})


def pretext_label(spec: str | list[str]) -> str:
    """The pretext set's name as tables and figures show it (``all``, ``sentinel2+aster``)."""
    return resolve_pretext(spec).name


def _pretext_text(spec: str | list[str]) -> str:
    return spec if isinstance(spec, str) else ",".join(spec)
