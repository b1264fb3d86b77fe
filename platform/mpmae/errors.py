"""The project's one error type, so the CLI can tell a user's mistake from a bug."""

from __future__ import annotations


class MpmaeError(Exception):
    """An error whose message already says what went wrong and what to do; the CLI prints
    it without a traceback.

    Subclasses also derive from the builtin error they refine (``ConfigError(MpmaeError,
    ValueError)``), so callers catching ``ValueError`` or ``RuntimeError`` keep working.
    """
