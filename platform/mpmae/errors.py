"""The project's one error type, so the CLI can tell a user's mistake from a bug."""

from __future__ import annotations

from mpmae.redact import redact_text


class MpmaeError(Exception):
    """An error whose message already says what went wrong and what to do; the CLI prints
    it without a traceback.

    Subclasses also derive from the builtin error they refine (``ConfigError(MpmaeError,
    ValueError)``), so callers catching ``ValueError`` or ``RuntimeError`` keep working.

    The message is redacted (:mod:`mpmae.redact`): a URI's password never reaches a
    console, a job's log or a failed run's record through an error.
    """

    exit_code = 2  # what the command line exits with

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact_text(a) if isinstance(a, str) else a for a in args))


class Preempted(MpmaeError):
    """The run stopped at a notice (a signal, a spot instance's warning) after writing a
    checkpoint at its last step; the same command resumes there. Its own exit code (75,
    EX_TEMPFAIL: try again later), so a scheduler can tell it from a failure."""

    exit_code = 75
