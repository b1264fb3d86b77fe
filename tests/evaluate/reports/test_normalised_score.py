"""GEO-Bench's normalised score: normalizer.json read with validation, geobench's formula,
and the bounds found beside each dataset in its benchmark folder."""

from __future__ import annotations

import pytest
from geobench_layout import NORMALIZER_BOUNDS, write_normalizer

from mpmae.errors import MpmaeError
from mpmae.evaluate.reports.normalised_score import Bounds, benchmark_bounds, read_normalizer


def test_the_file_geobench_ships_reads_as_its_bounds(tmp_path):
    found = read_normalizer(write_normalizer(tmp_path))

    assert found == {name: Bounds(*pair) for name, pair in NORMALIZER_BOUNDS.items()}
    eurosat = found["m-eurosat"]
    assert eurosat.normalise(0.985) == pytest.approx(1.0)
    assert eurosat.normalise(0.946) == pytest.approx(0.5)
    assert eurosat.normalise(0.5) == pytest.approx((0.5 - 0.907) / 0.078)  # not clipped


@pytest.mark.parametrize(("text", "expected"), [
    ("{not json", "not readable JSON"),
    ('[["m-eurosat", 0.9, 1.0]]', "expected an object"),
    ('{"m-eurosat": [0.9]}', "'m-eurosat' must be [low, high]"),
    ('{"m-eurosat": {"low": 0.9, "high": 1}}', "'m-eurosat' must be [low, high]"),
    ('{"m-eurosat": [0.9, "1"]}', "'m-eurosat' must be [low, high]"),
    ('{"m-eurosat": [true, 1]}', "'m-eurosat' must be [low, high]"),
    ('{"m-eurosat": [0.9, NaN]}', "'m-eurosat' must be [low, high]"),
    ('{"m-so2sat": [0.6, 0.6]}', "'m-so2sat' has low 0.6 not below high 0.6"),
])
def test_a_bad_file_is_one_line_naming_file_and_dataset(tmp_path, text, expected):
    path = tmp_path / "normalizer.json"
    path.write_text(text)

    with pytest.raises(MpmaeError) as error:
        read_normalizer(path)
    message = str(error.value)
    assert str(path) in message and expected in message and "\n" not in message


def test_each_dataset_takes_the_bounds_of_its_own_benchmark_folder(tmp_path):
    classification, segmentation = tmp_path / "classification_v1.0", tmp_path / "seg"
    for folder in (classification / "m-eurosat", classification / "m-new",
                   segmentation / "m-cashew-plant"):
        folder.mkdir(parents=True)
    write_normalizer(classification)

    found = benchmark_bounds([classification / "m-eurosat", classification / "m-new",
                              segmentation / "m-cashew-plant"])

    assert found == {"m-eurosat": Bounds(0.907, 0.985)}  # m-new unnamed, seg has no file
    assert benchmark_bounds([segmentation / "m-cashew-plant"]) == {}
