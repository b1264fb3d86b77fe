"""Credentials out of everything mpmae writes or prints.

A URI may carry a password (``postgresql://user:pw@db/mlflow``, ``https://user:pw@host``).
Saved configs, MLflow params, checkpoints, console summaries, log records and error
messages pass through here, so such a password is replaced by ``***`` wherever it would
otherwise be copied to a place other people can read.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REDACTED = "***"
# scheme://user:password@ — greedy up to the last '@' before the path, so a password with
# an unescaped '@' in it is still masked whole.
_URI_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/@:]*):[^\s/]+@")


def redact_text(text: str) -> str:
    """``text`` with the password of every URI in it replaced by ``***``."""
    return _URI_PASSWORD.sub(rf"\1:{REDACTED}@", text)


def redact_data(data: Any) -> Any:
    """Every string inside nested dicts, lists and tuples passed through :func:`redact_text`."""
    if isinstance(data, str):
        return redact_text(data)
    if isinstance(data, dict):
        return {k: redact_data(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(redact_data(v) for v in data)
    return data


def has_credentials(uri: str) -> bool:
    """True when ``uri`` carries a password in its user info."""
    return redact_text(uri) != uri


def without_credentials(uri: str) -> str:
    """``uri`` with its whole user info removed (the host and path still usable)."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def redact_log_records() -> None:
    """Make every log record created from now on carry redacted text (a record factory
    sees records of every logger, including libraries' own, before any handler does)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "mpmae_redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if record.args:
            record.msg, record.args = redact_text(record.getMessage()), ()
        elif isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        return record

    factory.mpmae_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
