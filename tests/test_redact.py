"""A URI's password never reaches a saved config, an error, a log line or a traceback."""

from __future__ import annotations

import logging

import pytest

from mpmae.cli import main
from mpmae.config import ConfigError, dump_yaml, flatten, override
from mpmae.errors import MpmaeError
from mpmae.redact import (
    has_credentials,
    redact_log_records,
    redact_text,
    without_credentials,
)
from mpmae.train.config import PretrainConfig

PASSWORD = "hunter2-do-not-print"
DB = f"postgresql://mlflow:{PASSWORD}@db.internal:5432/mlflow"


@pytest.mark.parametrize(("text", "expected"), [
    (DB, "postgresql://mlflow:***@db.internal:5432/mlflow"),
    (f"https://user:{PASSWORD}@mlflow.example/api", "https://user:***@mlflow.example/api"),
    ("https://user:p@ss@host/x", "https://user:***@host/x"),  # an unescaped '@' in it
    (f"one {DB} and http://a:{PASSWORD}@b two",
     "one postgresql://mlflow:***@db.internal:5432/mlflow and http://a:***@b two"),
    ("http://mlflow.example:5000/path", "http://mlflow.example:5000/path"),
    ("s3://bucket/key@version", "s3://bucket/key@version"),
])
def test_passwords_in_uris_are_masked(text, expected):
    assert redact_text(text) == expected
    assert has_credentials(text) == (text != expected)


def test_credentials_can_be_stripped_for_forwarding():
    assert without_credentials(DB) == "postgresql://db.internal:5432/mlflow"
    assert without_credentials("http://h:5000") == "http://h:5000"


def test_saved_config_and_params_hold_no_password():
    cfg = override(PretrainConfig(), {"mlflow.tracking_uri": DB})
    saved, params = dump_yaml(cfg), flatten(cfg)
    assert PASSWORD not in saved and "mlflow:***@db.internal" in saved
    assert params["mlflow.tracking_uri"] == redact_text(DB)


def test_errors_mask_passwords():
    assert PASSWORD not in str(MpmaeError(f"cannot reach {DB}"))
    error = ConfigError(f"cannot reach {DB}", key="mlflow.tracking_uri")
    assert PASSWORD not in str(error) and PASSWORD not in error.message


def test_log_records_are_masked(caplog):
    redact_log_records()
    with caplog.at_level(logging.WARNING):
        logging.getLogger("some.library").warning("connecting to %s", DB)
        logging.getLogger("mpmae.test").warning(f"plain message {DB}")
    assert PASSWORD not in caplog.text and caplog.text.count("mlflow:***@") == 2


def test_an_uncaught_library_error_prints_its_traceback_masked(monkeypatch, capsys):
    import sys

    import mpmae.data.inspect

    def library_failure(uri, **_):  # as a database driver does: the URL in its message
        raise RuntimeError(f"could not connect to {DB}")

    monkeypatch.setattr(mpmae.data.inspect, "inspect_dataset", library_failure)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    with pytest.raises(RuntimeError) as caught:  # it propagates, as any other error does
        main(["data", "inspect", "/anywhere"])
    sys.excepthook(caught.type, caught.value, caught.tb)  # what the interpreter calls
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: could not connect to" in err
    assert PASSWORD not in err and "mlflow:***@db.internal" in err
