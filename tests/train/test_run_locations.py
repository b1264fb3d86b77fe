"""``mpmae pretrain``'s driver resolves the data and the runs root once (``located``) and
hands the locations down: the dataset is opened at them, and the probe set's default is
looked for at the data's location."""

import pytest

from mpmae.config import ConfigError, override
from mpmae.train.config import PretrainConfig
from mpmae.train.launch import located, open_dataset


def _cfg(tmp_path, data, **more):
    return override(PretrainConfig(), {
        "data.uri": str(data), "storage.root": str(tmp_path / "runs"),
        "mlflow.tracking_uri": f"sqlite:///{tmp_path}/m.db", "model.img_size": 16,
        "model.pretext": "S2", **more})


def test_the_locations_are_the_configs_uris_and_open_the_data(tmp_path, small_world):
    cfg, where = located(_cfg(tmp_path, small_world))
    assert (where.data.uri, where.runs.uri) == (cfg.data.uri, cfg.storage.root)
    assert cfg.data.probe_uri == ""  # no probe, no default looked for
    dataset = open_dataset(cfg, where.data, progress=print)
    assert dataset.root is where.data and dataset.manifest.num_tiles == 96


def test_the_probe_default_is_the_datas_downstream_folder(tmp_path, small_world):
    cfg, where = located(_cfg(tmp_path, small_world, **{"train.probe_every": 5}))
    assert cfg.data.probe_uri == where.data.join("downstream").uri


def test_a_probe_without_a_labelled_set_is_refused(tmp_path, small_world):
    with pytest.raises(ConfigError, match=r"^data\.probe_uri: train\.probe_every needs a "):
        located(_cfg(tmp_path, small_world / "downstream", **{"train.probe_every": 5}))
