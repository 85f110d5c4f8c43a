"""The CLI's side of the controller's HTTP API: one request, JSON back, or one line of error.
A write carries the API token (lbapp.apitoken) read from --token-file, $LBAPP_API_TOKEN_FILE or
the controller's default file for the API's port; a read carries it when that file is readable
(reads from another host need it)."""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from lbapp import apitoken
from lbapp.environment import EnvironmentProblem

DEFAULT_API = "http://127.0.0.1:8553"
TIMEOUT_S = 5.0


def add_api_option(p) -> None:
    p.add_argument("--api", default=os.environ.get("LBAPP_API", DEFAULT_API),
                   help=f"the controller's API (default $LBAPP_API or {DEFAULT_API}; lbapp run --api-port)")
    p.add_argument("--token-file", default=os.environ.get("LBAPP_API_TOKEN_FILE"), metavar="FILE",
                   help="the API token (default $LBAPP_API_TOKEN_FILE, or the file lbapp run makes for the "
                        "API's port: /run/lbapp/api-PORT.token as root)")


class ApiRefused(Exception):
    """The API answered with an error: its message, and the field-path errors if any."""

    def __init__(self, status: int, message: str, errors: list[str]) -> None:
        super().__init__(message)
        self.status, self.errors = status, errors


def call(api: str, path: str, body: dict[str, Any] | None = None, token_file: str | None = None) -> Any:
    """GET ``path`` of the API, or POST ``body`` to it (with the token)."""
    if not api.startswith(("http://", "https://")):
        raise EnvironmentProblem(f"--api {api[:100]!r}: not an HTTP URL (like {DEFAULT_API})")
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    token = _token(api, token_file, needed=data is not None)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(api.rstrip("/") + path, data=data, method="POST" if data is not None else "GET",
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            answer = json.loads(exc.read())
        except ValueError:
            answer = {"error": exc.reason, "errors": []}
        raise ApiRefused(exc.code, answer.get("error", str(exc.reason)), answer.get("errors", [])) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EnvironmentProblem(f"no lbapp API at {api} ({reason}): is `lbapp run` running, with --api-port?"
                                 ) from None


def _token(api: str, token_file: str | None, needed: bool) -> str | None:
    """The token from ``token_file`` (or the default file for the API's port); when it is not
    ``needed`` and not named, a file that cannot be read means none."""
    if token_file is None:
        token_file = str(apitoken.default_path(_port_of(api)))
        if not needed:
            try:
                return apitoken.read(token_file)
            except EnvironmentProblem:
                return None
    return apitoken.read(token_file)


def _port_of(api: str) -> int:
    """The API URL's port (its scheme's default when it names none)."""
    try:
        port = urllib.parse.urlsplit(api).port
    except ValueError:  # a port that is not a number: the request itself will say so
        port = None
    return port or (443 if api.startswith("https") else 80)
