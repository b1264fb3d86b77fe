"""``mpmae evaluate ENCODER… DATASET…``: telling encoders from datasets, and the one-line
errors that list what each argument was taken as."""

from __future__ import annotations

import pytest
from geobench_layout import eurosat_like, so2sat_like

from mpmae.errors import MpmaeError
from mpmae.evaluate.command.arguments import DATASET, ENCODER, split_targets, take


@pytest.fixture
def world(tmp_path):
    """A benchmark folder of two datasets and an encoder release folder."""
    bench = tmp_path / "bench"
    eurosat_like(bench)
    so2sat_like(bench)
    release = tmp_path / "release"
    release.mkdir()
    (release / "config.json").write_text("{}")  # what marks a release folder
    return bench, release


def test_every_kind_of_encoder_and_dataset_is_told_apart(world):
    bench, release = world
    args = ["random:atto", "models:/mpmae-encoder/3", "runs:/abc/encoder", str(release),
            "s3://bucket/runs/demo-2/encoder", "demo-1", str(bench / "m-eurosat"), str(bench)]

    assert [take(a).role for a in args] == [ENCODER] * 6 + [DATASET] * 2
    assert take("demo-1").reason == "a pretraining run name"
    assert take("s3://bucket/runs/demo-2/encoder").reason == "a release folder on S3"
    assert take(str(bench)).reason == "a benchmark folder"
    targets = split_targets(args)
    assert targets.encoders == args[:6] and targets.datasets == args[6:]


def _error(args: list[str]) -> str:
    with pytest.raises(MpmaeError) as error:
        split_targets(args)
    message = str(error.value)
    assert "\n" not in message and "ENCODER… DATASET…" in message
    return message


def test_a_typo_in_a_dataset_path_lists_how_each_argument_was_taken(world):
    bench, _ = world
    message = _error(["random:atto", str(bench / "m-eurosatt")])

    assert "some arguments are neither an encoder nor a dataset" in message
    assert "'random:atto' → encoder (random:SIZE)" in message
    assert f"'{bench / 'm-eurosatt'}' → unknown (no such folder, and not a run name)" in message


@pytest.mark.parametrize(("case", "expected"), [
    ("no dataset", "no dataset given"),
    ("no encoder", "no encoder given"),
    ("order", "encoders must all come before the datasets"),
    ("twice", "an encoder is named twice"),
    ("both", "holds both config.json (an encoder release) and task_specs.pkl (a dataset)"),
    ("empty folder", "a folder with no config.json, task_specs.pkl or *.tortilla"),
    ("file", "a file, not a folder"),
])
def test_what_cannot_be_split_is_refused(world, tmp_path, case, expected):
    bench, release = world
    eurosat = str(bench / "m-eurosat")
    if case == "both":
        (bench / "m-eurosat" / "config.json").write_text("{}")
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    args = {"no dataset": ["random:atto", "demo-1"],
            "no encoder": [eurosat],
            "order": ["random:atto", eurosat, str(release), str(bench / "m-so2sat")],
            "twice": ["random:atto", "random:atto", eurosat],
            "both": ["random:atto", eurosat],
            "empty folder": ["random:atto", str(tmp_path / "empty")],
            "file": ["random:atto", str(tmp_path / "notes.txt"), eurosat]}[case]

    assert expected in _error(args)
