"""Fixtures of the evaluation tests."""

from __future__ import annotations

import mlflow
import pytest


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    """A fresh SQLite MLflow store as MLFLOW_TRACKING_URI; yields its URI."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    yield uri
    mlflow.set_tracking_uri(None)
