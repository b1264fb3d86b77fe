"""Is the MLflow tracking server there? One short HTTP request, no MLflow retries.

MLflow's own client retries a refused connection for minutes (urllib3 back-off); these
checks answer within seconds, so a run can refuse to start, or train on, at once.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from mpmae.redact import redact_text

CHECK_TIMEOUT_S = 5.0
# MLflow's defaults (120 s timeout, 7 retries with exponential back-off) take minutes to
# give up on a server that is gone; these notice it in seconds.
HTTP_TIMEOUT_S = 10
SHORT_HTTP = {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(HTTP_TIMEOUT_S),
              "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"}


def is_remote(uri: str) -> bool:
    """An http(s) server, the only kind that can go away (SQLite and folders cannot)."""
    return uri.startswith(("http://", "https://"))


def why_not_answering(uri: str, timeout_s: float = CHECK_TIMEOUT_S) -> str | None:
    """Why ``uri`` does not answer (refused, timed out, unknown host), or None if it does.

    Any HTTP answer counts, even 401 or 404: the server is up, only the connection matters.
    """
    if not is_remote(uri):
        return None
    parts = urllib.parse.urlsplit(uri)
    # /health needs no login, and urllib cannot read a password inside the URL.
    bare = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl().rstrip("/")
    try:
        with urllib.request.urlopen(f"{bare}/health", timeout=timeout_s):
            return None
    except urllib.error.HTTPError:
        return None
    except urllib.error.URLError as e:
        return str(e.reason)
    except (OSError, ValueError) as e:
        return str(e) or type(e).__name__


def shown(uri: str) -> str:
    """The URI as messages show it: without a password."""
    return redact_text(uri)


@contextmanager
def short_http() -> Iterator[None]:
    """MLflow calls inside give up within seconds (unless the user set these variables)."""
    saved = {name: os.environ.get(name) for name in SHORT_HTTP}
    for name, value in SHORT_HTTP.items():
        os.environ.setdefault(name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
