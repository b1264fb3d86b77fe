"""The typed config: YAML + dotted overrides, strict keys and types, dump/flatten round trips."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from mpmae.config import (
    ConfigError,
    cache_dir,
    data_dir,
    describe,
    dump_yaml,
    flatten,
    from_dict,
    load_config,
    override,
    run_stamp,
    runs_dir,
)
from mpmae.train.config import PretrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "jobs" / "configs"


@dataclass(frozen=True)
class Shapes:
    """Field types the pretraining schema does not use but the machinery supports."""

    tags: list[str] = field(default_factory=list)
    sizes: tuple[int, ...] = ()
    ratio: float | None = 0.5


def load(*overrides: str, path: Path | None = None) -> PretrainConfig:
    return load_config(PretrainConfig, path, list(overrides))


def error_of(*overrides: str) -> str:
    with pytest.raises(ConfigError) as e:
        load(*overrides)
    return str(e.value)


# sweep_*.yaml are `mpmae tune` configs (TuneConfig); tests/tune loads them.
@pytest.mark.parametrize("path", sorted(p for p in CONFIGS.glob("*.yaml")
                                        if not p.name.startswith("sweep_")),
                         ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    assert isinstance(load(path=path), PretrainConfig)


def test_demo_yaml_is_the_defaults():
    assert load(path=CONFIGS / "demo.yaml") == PretrainConfig()


def test_paper_recipe():
    cfg = load(path=CONFIGS / "mmearth64_atto.yaml")
    assert cfg.effective_batch == 4096
    assert cfg.resolved_lr == pytest.approx(1.5e-4 * 4096 / 256)
    assert (cfg.optim.epochs, cfg.optim.warmup_epochs, cfg.optim.betas) == (200, 40, (0.9, 0.95))
    assert (cfg.model.img_size, cfg.model.patch_size, cfg.model.mask_ratio) == (56, 8, 0.6)
    assert cfg.model.pretext_set.name == "all"
    assert cfg.model.loss_weighting == "uncertainty"
    # as the paper's runs: fp32, GRN and mask token decayed, one LayerNorm per cell
    assert (cfg.train.precision, cfg.optim.decay_grn_and_mask_token) == ("fp32", True)
    assert cfg.model.image_head_norm == "cells"


@pytest.mark.parametrize(
    ("override_", "key", "suggestion"),
    [
        ("modle.size=tiny", "modle", "model"),
        ("model.siz=tiny", "model.siz", "model.size"),
        ("optim.warmup=3", "optim.warmup", "optim.warmup_epochs"),
    ],
)
def test_unknown_key_names_dotted_path_and_closest_key(override_, key, suggestion):
    message = error_of(override_)
    assert message.startswith(f"{key}: unknown key")
    assert f"did you mean '{suggestion}'" in message
    assert "Allowed keys" in message


def test_unknown_key_in_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  size: atto\n  masking_ratio: 0.5\n")
    with pytest.raises(ConfigError, match=r"model\.masking_ratio: unknown key; did you mean "
                                          r"'model\.mask_ratio'\?"):
        load(path=path)


@pytest.mark.parametrize(
    ("override_", "expected"),
    [
        ("train.batch_size=1.5", "train.batch_size: expected int, got 1.5"),
        ("train.batch_size=true", "train.batch_size: expected int, got True"),
        ("model.mask_ratio=lots", "model.mask_ratio: expected float, got 'lots'"),
        ("scaling.use_gpu=maybe", "scaling.use_gpu: expected bool or null"),
        ("optim.betas=[0.9]", "optim.betas: expected [float, float] (2 items)"),
        ("optim.betas=[0.9,high]", "optim.betas[1]: expected float"),
        ("model=3", "model: expected a mapping of keys"),
    ],
)
def test_wrong_type(override_, expected):
    assert expected in error_of(override_)


def test_bad_literal_lists_allowed_values():
    message = error_of("model.size=Tiny")
    assert "model.size: must be one of 'atto', 'femto', 'pico', 'nano', 'tiny'" in message
    assert "did you mean 'tiny'" in message


def test_overrides_are_typed():
    cfg = load(
        "model.size=tiny",
        "optim.betas=[0.85,0.99]",
        "optim.base_lr=1e-4",  # YAML 1.1 reads this as a string; float fields accept it
        "optim.lr=null",
        "train.max_steps=20",
        "scaling.use_gpu=false",
        "run_name=2024-05-01",  # stays a string rather than a YAML date
        "model.pretext=[sentinel2, aster]",
    )
    assert cfg.model.size == "tiny"
    assert cfg.optim.betas == (0.85, 0.99)
    assert cfg.optim.base_lr == 1e-4 and cfg.optim.lr is None
    assert cfg.train.max_steps == 20 and cfg.scaling.use_gpu is False
    assert cfg.run_name == "2024-05-01"
    assert cfg.model.pretext == ("sentinel2", "aster")
    assert cfg.model.pretext_set.tasks == ("sentinel2", "aster")


def test_overrides_apply_on_top_of_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {size: femto, mask_ratio: 0.5}\n")
    cfg = load("model.mask_ratio=0.75", path=path)
    assert (cfg.model.size, cfg.model.mask_ratio) == ("femto", 0.75)


@pytest.mark.parametrize("bad", ["model.size", "=tiny", "model size=tiny"])
def test_override_syntax_errors_are_explained(bad):
    assert "is not KEY=VALUE; write e.g. --set model.size=tiny" in error_of(bad)


def test_unparsable_override_value():
    assert "optim.betas: cannot parse '[0.9' as a YAML value" in error_of("optim.betas=[0.9")


def test_missing_or_invalid_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load(path=tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load(path=tmp_path / "list.yaml")


@pytest.mark.parametrize(
    ("override_", "expected"),
    [
        ("model.img_size=60", "model.img_size: 60 is not a multiple of patch_size 8"),
        ("model.img_size=72", "model.img_size: 72 is larger than data.tile_size 64"),
        ("model.patch_size=12", "model.patch_size: must be a multiple of 8"),
        ("model.mask_ratio=1", "model.mask_ratio: must be in [0, 1)"),
        ("model.pretext=[aster]", "model.pretext: a pretext task list must include 'sentinel2'"),
        ("model.pretext=everything", "model.pretext: unknown pretext task(s)"),
        ("optim.warmup_epochs=10", "optim.warmup_epochs: must be between 0 and epochs"),
        ("train.accumulation=0", "train.accumulation: must be 1 or more"),
        ("name=my run", "name: use letters, digits"),
    ],
)
def test_cross_field_validation(override_, expected):
    assert expected in error_of(override_)


def test_generic_lists_and_variable_tuples():
    shapes = from_dict(Shapes, {"tags": ["a", "b"], "sizes": [1, 2, 3], "ratio": 1})
    assert shapes == Shapes(["a", "b"], (1, 2, 3), 1.0)
    assert from_dict(Shapes, yaml.safe_load(dump_yaml(shapes))) == shapes
    with pytest.raises(ConfigError, match=r"tags\[1\]: expected str, got 2 \(int\)"):
        from_dict(Shapes, {"tags": ["a", 2]})
    with pytest.raises(ConfigError, match=re.escape("sizes: expected [int, ...], got 3")):
        from_dict(Shapes, {"sizes": 3})


def test_round_trip_dump_load(tmp_path):
    cfg = load("model.pretext=[sentinel2,era5]", "optim.lr=0.001", "optim.betas=[0.8,0.9]",
               "scaling.use_gpu=true", "train.max_steps=7")
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_yaml(cfg))
    assert load(path=path) == cfg
    assert from_dict(PretrainConfig, yaml.safe_load(dump_yaml(cfg))) == cfg


def test_flatten_gives_dotted_scalars():
    flat = flatten(load("model.pretext=[sentinel2,aster]"))
    assert flat["model.size"] == "atto"
    assert flat["model.mask_ratio"] == 0.6
    assert flat["model.share_decoder"] is True
    assert flat["model.pretext"] == '["sentinel2", "aster"]'
    assert flat["optim.betas"] == "[0.9, 0.95]"
    assert flat["optim.lr"] == 0.001
    assert flatten(load("optim.lr=null"))["optim.lr"] == "null"
    assert all(isinstance(v, (str, int, float, bool)) for v in flat.values())


def test_credentials_never_reach_dump_or_flatten(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-VISIBLE-ONLY-IN-ENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value")
    cfg = load("storage.endpoint_url=http://127.0.0.1:9000")
    opts = cfg.storage.options()
    assert opts.secret_access_key == "very-secret-value"
    assert opts.endpoint_url == "http://127.0.0.1:9000"
    for text in (dump_yaml(cfg), str(flatten(cfg)), repr(cfg), repr(opts)):
        assert "very-secret-value" not in text and "AKIA-VISIBLE" not in text
    assert "storage.secret_access_key: unknown key" in error_of(
        "storage.secret_access_key=oops")


def test_override_helper_checks_values():
    cfg = override(PretrainConfig(), {"model.mask_ratio": 0.75, "train.batch_size": 8})
    assert (cfg.model.mask_ratio, cfg.train.batch_size) == (0.75, 8)
    with pytest.raises(ConfigError, match=r"model\.mask_ratio: must be in"):
        override(cfg, {"model.mask_ratio": 1.5})


def test_describe_lists_every_key_with_default_and_help():
    text = describe(PretrainConfig)
    assert '  model.size: atto|femto|pico|nano|tiny = "atto"' in text
    assert "      ConvNeXt V2 encoder size" in text
    assert "  optim.betas: [float, float] = [0.9, 0.95]" in text
    assert '  model.init: reference|convnext = "convnext"' in text
    assert '  model.image_head_norm: cells|pooled = "cells"' in text
    assert '  model.missing_targets: ignore|zero = "ignore"' in text
    assert "  optim.decay_grn_and_mask_token: bool = false" in text
    for key in flatten(PretrainConfig()):
        assert f"  {key}: " in text


def test_effective_batch_and_lr():
    cfg = load("train.batch_size=16", "train.accumulation=2", "scaling.num_workers=4",
               "optim.lr=null")
    assert cfg.effective_batch == 128
    assert cfg.resolved_lr == pytest.approx(1.5e-4 * 128 / 256)
    assert load("optim.lr=0.01").resolved_lr == 0.01


def test_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("MPMAE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("MPMAE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "mpmae"


def test_runs_and_data_go_under_the_cache_and_runs_are_stamped_to_the_second(monkeypatch,
                                                                             tmp_path):
    monkeypatch.setenv("MPMAE_HOME", str(tmp_path))
    assert runs_dir() == tmp_path / "runs"
    assert data_dir() == tmp_path / "data"
    stamp = run_stamp()
    assert re.fullmatch(r"\d{8}-\d{6}", stamp), stamp
    assert dt.datetime.strptime(stamp, "%Y%m%d-%H%M%S") <= dt.datetime.now()


@pytest.mark.parametrize("text, message", [
    ("optim:\n  lr: .inf\n", "optim.lr: must be a finite number, got inf"),
    ("optim:\n  weight_decay: .nan\n", "optim.weight_decay: must be a finite number, got nan"),
    ("train:\n  seed: -1\n", "train.seed: a seed must be 0 or more, got -1"),
    ("train:\n  seed: 1\n  batch_size: 8\n  seed: 2\n", "(line 4): key 'seed' is given twice"),
    ("model:\n  mask_ratio: 0.0\n", "masks no patch of the 49 in a 56px crop"),
    ("mlflow:\n  register_as: team/encoder\n", "MLflow model names cannot contain '/'"),
])
def test_values_that_would_fail_late_are_refused_when_loading(tmp_path, text, message):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load(path=path)
    assert message in str(e.value)


@pytest.mark.parametrize("override_, message", [
    ("optim.lr=inf", "optim.lr: must be a finite number"),  # lr is a float or null
    ("optim.epochs=-inf", "optim.epochs: must be a finite number"),
    ("train.seed=-5", "train.seed: a seed must be 0 or more"),
])
def test_overrides_get_the_same_checks(override_, message):
    assert message in error_of(override_)


def test_a_binary_config_file_is_one_clear_error(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    with pytest.raises(ConfigError, match="is not a text file: give a YAML config file"):
        load(path=path)


def test_the_smallest_ratio_that_masks_a_patch_is_accepted():
    assert load("model.mask_ratio=0.03").model.mask_ratio == 0.03  # 1 of 49 patches masked
