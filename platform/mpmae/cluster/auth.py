"""The Ray cluster token, found where Ray itself looks, and sent as an HTTP header to the
Job API by :mod:`mpmae.cluster.submit`.

Ray 2.60 turns on token auth for a new local head by default: the dashboard and Job API
then answer 401 without ``Authorization: Bearer <token>``. Ray's own client only adds that
header when ``RAY_AUTH_MODE=token`` is set in the *client's* environment; we send it
explicitly instead, so submitting works whatever that variable says. The token is looked up
in Ray's order (``RAY_AUTH_TOKEN``, the file at ``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``)
after an explicit ``--token``. It is never printed: only where it came from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
DEFAULT_TOKEN_PATH = Path("~/.ray/auth_token")


@dataclass(frozen=True)
class ClusterToken:
    """A token, or None, and where it came from (or where it was looked for: no secret)."""

    value: str | None = field(repr=False)
    source: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.value}"} if self.value else {}


def find_token(explicit: str | None = None, env: Mapping[str, str] | None = None) -> ClusterToken:
    """The token from ``explicit``, else ``$RAY_AUTH_TOKEN``, else the token file."""
    env = os.environ if env is None else env
    if explicit:
        return ClusterToken(explicit.strip(), "--token")
    if env.get(TOKEN_ENV, "").strip():
        return ClusterToken(env[TOKEN_ENV].strip(), f"${TOKEN_ENV}")
    # Like Ray: an explicit RAY_AUTH_TOKEN_PATH replaces the default file, never adds to it.
    path = Path(env.get(TOKEN_PATH_ENV) or DEFAULT_TOKEN_PATH).expanduser()
    try:
        value = path.read_text().strip()
    except OSError:
        value = ""
    if value:
        return ClusterToken(value, str(path))
    return ClusterToken(None, f"--token, ${TOKEN_ENV}, {path}")
