"""The embedded Ray's workers hide Ray-internal noise, and only that."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import yaml
from ray.util.annotations import RayDeprecationWarning

from mpmae.ray_fixes import quiet_workers


def test_runtime_env_points_workers_at_the_hook_and_a_quieter_ray_data_console(tmp_path):
    env = quiet_workers.embedded_runtime_env(tmp_path)
    module, function = env["worker_process_setup_hook"].rsplit(".", 1)
    assert getattr(__import__(module, fromlist=[function]), function) is quiet_workers.setup
    config = yaml.safe_load(Path(env["env_vars"]["RAY_DATA_LOGGING_CONFIG"]).read_text())
    assert config["handlers"]["console"]["level"] == "WARNING"
    assert "file" in config["loggers"]["ray.data"]["handlers"]  # ray-data.log keeps all
    assert env["env_vars"]["RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"] == "0"


def test_setup_hides_the_cleaner_warning_and_rays_own_deprecations_only(monkeypatch):
    cleaner = logging.getLogger(quiet_workers.CLEANER_LOGGER)
    monkeypatch.setattr(cleaner, "level", cleaner.level)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_workers.setup()
        for module in ("ray.data._internal.execution.interfaces", "my_pipeline"):
            warnings.warn_explicit("old API", RayDeprecationWarning, "x.py", 1, module=module)
    assert not cleaner.isEnabledFor(logging.WARNING)
    assert cleaner.isEnabledFor(logging.ERROR)
    assert len(caught) == 1  # my_pipeline's: a user's own call still warns
