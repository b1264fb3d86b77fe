"""The model config's choices (``mpmae.model.choices``, torch-free) are what the config
offers and exactly the keys of the registries that implement them, so a choice cannot be
offered without an implementation nor an implementation go unoffered."""

from typing import get_args, get_type_hints

import pytest

from mpmae.model.choices import (
    IMAGE_HEAD_NORMS,
    INIT_NAMES,
    MISSING_TARGETS,
    MODEL_SIZES,
    STEM_NAMES,
    WEIGHTING_NAMES,
)
from mpmae.model.config import MPMAEConfig
from mpmae.model.convnextv2 import ENCODER_SIZES
from mpmae.model.init import INITS
from mpmae.model.stems import STEMS
from mpmae.model.weighting import WEIGHTINGS


@pytest.mark.parametrize(("names", "registry"), [
    (MODEL_SIZES, ENCODER_SIZES), (STEM_NAMES, STEMS), (WEIGHTING_NAMES, WEIGHTINGS),
    (INIT_NAMES, INITS),
], ids=["sizes", "stems", "weightings", "inits"])
def test_each_registry_is_keyed_by_its_choices(names, registry):
    assert tuple(registry) == names


def test_the_config_offers_exactly_the_choices():
    hints = get_type_hints(MPMAEConfig)
    offered = {key: get_args(hints[key]) for key in (
        "size", "stem", "loss_weighting", "init", "image_head_norm", "missing_targets")}
    assert offered == {"size": MODEL_SIZES, "stem": STEM_NAMES, "loss_weighting": WEIGHTING_NAMES,
                       "init": INIT_NAMES, "image_head_norm": IMAGE_HEAD_NORMS,
                       "missing_targets": MISSING_TARGETS}
