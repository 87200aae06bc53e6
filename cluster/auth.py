"""The Ray auth token a client sends to a cluster's job server, found where Ray itself looks for it.

Ray 2.52+ clusters can require a bearer token on every dashboard and job API request (token auth is on
by default for clusters started with Ray 2.59+). Ray's own client only sends the token when the *client*
process has ``RAY_AUTH_MODE=token`` set, so ``ray job submit`` against such a cluster fails with
"Missing authentication token" even when the token sits in ``~/.ray/auth_token``. erdiff sends the token
whenever one is configured, as an ``Authorization: Bearer`` header, which Ray's client passes through as is.

Sources, in Ray's order of precedence (docs.ray.io "Token Authentication", "Token Sources and Precedence"):

1. ``RAY_AUTH_TOKEN``: the token itself;
2. ``RAY_AUTH_TOKEN_PATH``: a file holding it (an unreadable or empty file is an error, as in Ray);
3. ``~/.ray/auth_token``: the file ``ray start`` / ``ray get-auth-token --generate`` writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from erdiff.errors import ErdiffError

TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"


class AuthTokenError(ErdiffError):
    """The configured Ray auth token cannot be read."""


@dataclass(frozen=True)
class AuthToken:
    value: str = field(repr=False)
    """the secret: kept out of repr() so that a logged or printed token object shows only its source"""
    source: str
    """where it came from, for error messages (never the token itself)"""

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.value}"}


def default_token_path() -> Path:
    return Path.home() / ".ray" / "auth_token"


def _read_token_file(path: Path, source: str) -> str:
    try:
        token = path.read_text().strip()
    except OSError as err:
        raise AuthTokenError(f"{source}: cannot read the Ray auth token file {path} ({err.strerror})") from err
    if not token:
        raise AuthTokenError(f"{source}: the Ray auth token file {path} is empty")
    return token


def find_auth_token() -> AuthToken | None:
    """The token to send, or None when none is configured (a cluster without token auth needs none)."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return AuthToken(token, f"${TOKEN_ENV}")
    token_path = os.environ.get(TOKEN_PATH_ENV, "").strip()
    if token_path:
        return AuthToken(_read_token_file(Path(token_path), f"${TOKEN_PATH_ENV}"), f"${TOKEN_PATH_ENV} ({token_path})")
    path = default_token_path()
    if path.is_file():
        return AuthToken(_read_token_file(path, str(path)), str(path))
    return None
