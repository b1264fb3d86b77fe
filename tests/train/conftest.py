"""Tiny pretraining runs on a real local Ray: 16px tiles, two CPU workers, a few steps (the
fixtures are in tests/conftest.py, shared with tests/pipeline)."""
