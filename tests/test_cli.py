"""``mpmae.cli``: the data verbs' flags come from their config schemas, and ``main`` prints
only MpmaeErrors (one line, exit 2) while any other error keeps its traceback."""

import json
from dataclasses import asdict, fields

import pytest

import mpmae.data.inspect
from mpmae.cli import build_parser, main
from mpmae.config import ConfigError, describe
from mpmae.config_flags import config_from_args, flag_name
from mpmae.data.format.manifest import read_manifest
from mpmae.data.inspect_config import InspectConfig
from mpmae.data.sources.config import ConvertConfig, SynthConfig
from mpmae.mmearth_ckpt.config import ImportConfig
from mpmae.storage import resolve

VERBS = [
    (["data", "synth", "DEST"], SynthConfig),
    (["data", "convert", "SRC", "DEST"], ConvertConfig),
    (["data", "inspect", "URI"], InspectConfig),
    (["import-mmearth", "CHECKPOINT", "DEST"], ImportConfig),
]


@pytest.mark.parametrize(("argv", "schema"), VERBS, ids=lambda v: getattr(v, "__name__", ""))
def test_every_field_has_a_flag_whose_default_is_the_schemas(argv, schema, capsys):
    assert config_from_args(schema, build_parser().parse_args(argv)) == schema()
    with pytest.raises(SystemExit):
        main([*argv[:2], "--help"])
    usage = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    for f in fields(schema):
        default = json.dumps(getattr(schema(), f.name))  # as --help-config shows it
        assert f"{flag_name(f.name)} " in usage, f.name
        assert f"{' '.join(f.metadata['help'].split())} (default: {default})" in usage, f.name


def test_flags_set_every_field():
    argv = ["data", "convert", "SRC", "DEST", "--split", "val", "--limit", "3",
            "--shard-mb", "0.5", "--seed", "7", "--parallel", "false", "--num-workers", "2"]
    cfg = config_from_args(ConvertConfig, build_parser().parse_args(argv))
    assert cfg == ConvertConfig(split="val", limit=3, shard_mb=0.5, seed=7, parallel=False,
                                num_workers=2)


def test_help_config_prints_the_schema_without_the_positionals(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["data", "synth", "--help-config"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == describe(SynthConfig) + "\n"


def test_an_invalid_value_names_its_flag(tmp_path, capsys):
    args = build_parser().parse_args(["data", "synth", str(tmp_path), "--tiles", "0"])
    with pytest.raises(ConfigError, match=r"^--tiles: must be 1 or more, got 0$"):
        config_from_args(SynthConfig, args)
    assert main(["data", "synth", str(tmp_path / "world"), "--size", "4"]) == 2
    assert capsys.readouterr().err == "mpmae: error: --size: must be 8 pixels or more, got 4\n"
    assert not (tmp_path / "world").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["data", "convert", "SRC", "DEST", "--limit", "0"], "--limit: must be at least 1 tile"),
    (["data", "convert", "SRC", "DEST", "--shard-mb", "-1"], "--shard-mb: must be positive"),
    (["data", "inspect", "URI", "--tiles", "0"], "--tiles: must be 1 or more"),
    (["data", "synth", "DEST", "--tiles", "0"], "--tiles: must be 1 or more"),
    (["data", "synth", "DEST", "--tiles-per-shard", "0"], "--tiles-per-shard: must be 1 or more"),
    (["data", "synth", "DEST", "--downstream-tiles", "-5"],
     "--downstream-tiles: must be 0 (none) or more, got -5"),
    (["import-mmearth", "CKPT", "DEST", "--bands", "B2,B3,B2"], "--bands: lists a band twice"),
])
def test_every_verb_checks_its_options_before_it_starts(argv, message, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(f"mpmae: error: {message}")


def test_synth_writes_a_dataset(tmp_path, capsys):
    dest = tmp_path / "world"
    assert main(["data", "synth", str(dest), "--tiles", "16", "--size", "16",
                 "--tiles-per-shard", "8"]) == 0
    manifest = read_manifest(resolve(dest))
    assert (manifest.num_tiles, manifest.tile_size) == (16, 16)
    assert read_manifest(resolve(dest / "downstream")).num_tiles == SynthConfig(
        tiles=16).labelled_tiles()
    assert "synthesised 16 tiles" in capsys.readouterr().out


def test_a_mpmae_error_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["data", "inspect", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mpmae: error: no dataset.json at {tmp_path}")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_any_other_error_propagates_with_its_traceback(tmp_path, monkeypatch):
    def broken(uri, **options):
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(mpmae.data.inspect, "inspect_dataset", broken)
    with pytest.raises(RuntimeError, match="device-side assert"):
        main(["data", "inspect", str(tmp_path)])


def test_interrupt_exits_130(tmp_path, monkeypatch, capsys):
    def interrupted(uri, **options):
        raise KeyboardInterrupt

    monkeypatch.setattr(mpmae.data.inspect, "inspect_dataset", interrupted)
    assert main(["data", "inspect", str(tmp_path)]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_the_library_functions_default_to_the_schema():
    import inspect

    from mpmae.data.sources.convert import convert_mmearth
    from mpmae.data.sources.synth import synthesize

    for func, schema in ((synthesize, SynthConfig), (convert_mmearth, ConvertConfig),
                         (mpmae.data.inspect.inspect_dataset, InspectConfig)):
        params = inspect.signature(func).parameters
        assert {k: params[k].default for k in asdict(schema())} == asdict(schema()), func


def test_pretrain_help_config_shows_the_model_choices(capsys):
    assert main(["pretrain", "--help-config"]) == 0
    out = capsys.readouterr().out
    for key in ("model.init: reference|convnext", "model.image_head_norm: cells|pooled",
                "model.missing_targets: ignore|zero", "optim.decay_grn_and_mask_token: bool"):
        assert f"  {key} = " in out, key
