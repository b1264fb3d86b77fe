"""The search space: a TuneConfig's lists and ranges → the sweep's trials, each a key
(``t000``, ``t001``…, its folder and run name) and its drawn values; and a trial's values →
its pretraining config.

The trials are enumerated here, not by Ray Tune, so that a resumed sweep knows them again
without reading Tune's pickled state: the grid in a fixed order, random draws from a
generator seeded by the sweep's name.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from typing import Any

import numpy as np

from mpmae.config import override
from mpmae.modalities import resolve_pretext
from mpmae.train.config import PretrainConfig
from mpmae.tune.config import TuneConfig

# Search dimension → the pretraining config key it sets.
PARAM_KEYS = {
    "pretext": "model.pretext",
    "loss_weighting": "model.loss_weighting",
    "lr": "optim.lr",
    "mask_ratio": "model.mask_ratio",
    "seed": "train.seed",
}
KEY = "key"  # a trial's name among its values


def plan_trials(cfg: TuneConfig) -> list[dict[str, Any]]:
    """Every trial of the sweep, in order: ``{"key": "t000", "pretext": "all", …}``.
    Pretext sets travel as strings ("all", "sentinel2,aster"): tables show them readably
    and resolve_pretext accepts both forms."""
    search = cfg.search
    values = {key: list(getattr(search, key)) for key in PARAM_KEYS}
    values["pretext"] = [_pretext_text(p) for p in search.pretext]
    if search.mode == "grid":
        combos = [dict(zip(PARAM_KEYS, c, strict=True))
                  for c in itertools.product(*values.values())] * cfg.num_samples
    else:
        rng = np.random.default_rng(_name_seed(cfg.sweep_name))
        combos = [_draw(rng, values, search) for _ in range(cfg.num_samples)]
    width = max(3, len(str(len(combos) - 1)))
    return [{KEY: f"t{i:0{width}d}", **combo} for i, combo in enumerate(combos)]


def param_space(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """Ray Tune's param_space: exactly these trials, once each."""
    from ray import tune

    return {"trial": tune.grid_search(trials)}


def _draw(rng: np.random.Generator, values: dict[str, list], search) -> dict[str, Any]:
    combo = {key: options[rng.integers(len(options))] for key, options in values.items()}
    if search.lr_range:
        low, high = search.lr_range
        combo["lr"] = float(math.exp(rng.uniform(math.log(low), math.log(high))))
    if search.mask_ratio_range:
        combo["mask_ratio"] = float(rng.uniform(*search.mask_ratio_range))
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in combo.items()}


def _name_seed(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def trial_config(base: PretrainConfig, params: dict[str, Any]) -> PretrainConfig:
    """The base config with a trial's drawn values in place, named by its key."""
    updates = {PARAM_KEYS[key]: value for key, value in params.items() if key in PARAM_KEYS}
    if KEY in params:
        updates["run_name"] = params[KEY]
    return override(base, updates)


def pretext_label(spec: str | list[str]) -> str:
    """The pretext set's name as tables and figures show it (``all``, ``sentinel2+aster``)."""
    return resolve_pretext(spec).name


def _pretext_text(spec: str | list[str]) -> str:
    return spec if isinstance(spec, str) else ",".join(spec)
