import numpy as np
import pytest

from mpmae.modalities import (
    IGNORE_INDEX,
    MODALITIES,
    PRETEXT_SETS,
    S2_BANDS,
    S2_INPUT_BANDS,
    TaskKind,
    resolve_pretext,
)


def test_sentinel2_band_order_puts_b8a_before_b8_and_input_drops_b10():
    assert S2_BANDS.index("B8A") == S2_BANDS.index("B8") - 1
    assert len(S2_BANDS) == 13 and len(S2_INPUT_BANDS) == 12 and "B10" not in S2_INPUT_BANDS


@pytest.mark.parametrize(("name", "raw", "expected"), [
    ("dynamic_world", [0, 1, 9, 10], [IGNORE_INDEX, 0, 8, IGNORE_INDEX]),
    ("esa_worldcover", [0, 10, 95, 100, 255, 15], [IGNORE_INDEX, 0, 9, 10, IGNORE_INDEX,
                                                    IGNORE_INDEX]),
])
def test_class_maps(name, raw, expected):
    assert MODALITIES[name].class_lookup()[np.array(raw)].tolist() == expected


def test_head_sizes_come_from_the_catalogue():
    all_tasks = PRETEXT_SETS["all"]
    assert all_tasks.output_channels("sentinel2") == 12
    assert all_tasks.output_channels("sentinel1") == 8
    assert all_tasks.output_channels("dynamic_world") == 9
    assert all_tasks.output_channels("esa_worldcover") == 11
    assert all_tasks.output_channels("eco_region") == 846
    assert all_tasks.output_channels("era5") == 12
    assert PRETEXT_SETS["rgb"].in_chans == 3 and PRETEXT_SETS["rgb"].output_channels(
        "sentinel2") == 3


def test_named_sets_partition_pixel_and_image_tasks():
    pix, img = set(PRETEXT_SETS["pix"].tasks), set(PRETEXT_SETS["img"].tasks)
    assert pix & img == {"sentinel2"}
    assert pix | img == set(MODALITIES)
    assert all(MODALITIES[t].kind.is_pixel for t in pix)
    assert all(not MODALITIES[t].kind.is_pixel for t in img - {"sentinel2"})
    assert MODALITIES["biome"].kind is TaskKind.IMAGE_CLASS


def test_explicit_task_lists_resolve_in_catalogue_order_and_bad_ones_are_explained():
    assert resolve_pretext(["era5", "sentinel2"]).tasks == ("sentinel2", "era5")
    assert resolve_pretext("sentinel2,aster").tasks == ("sentinel2", "aster")
    with pytest.raises(ValueError, match="unknown pretext task"):
        resolve_pretext(["sentinel2", "radar"])
    with pytest.raises(ValueError, match="must include 'sentinel2'"):
        resolve_pretext(["aster"])


def test_biome_names_follow_mmearth_datas_index_order():
    # MMEarth-data's stats/biome_labels.json, not RESOLVE's BIOME_NUM order.
    names = MODALITIES["biome"].class_names
    assert len(names) == 14 and len(set(names)) == 14
    assert (names[0], names[1], names[2], names[3]) == (
        "tundra", "tropical_moist_broadleaf", "mediterranean", "desert_xeric")
    assert (names[5], names[9], names[13]) == ("boreal_taiga", "mangroves",
                                               "tropical_coniferous")
