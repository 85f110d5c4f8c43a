"""The CLI's side of the controller's HTTP API: one request, JSON back, or one line of error."""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

from lbapp.environment import EnvironmentProblem

DEFAULT_API = "http://127.0.0.1:8553"
TIMEOUT_S = 5.0


def add_api_option(p) -> None:
    p.add_argument("--api", default=os.environ.get("LBAPP_API", DEFAULT_API),
                   help=f"the controller's API (default $LBAPP_API or {DEFAULT_API}; lbapp run --api-port)")


class ApiRefused(Exception):
    """The API answered with an error: its message, and the field-path errors if any."""

    def __init__(self, status: int, message: str, errors: list[str]) -> None:
        super().__init__(message)
        self.status, self.errors = status, errors


def call(api: str, path: str, body: dict[str, Any] | None = None) -> Any:
    if not api.startswith(("http://", "https://")):
        raise EnvironmentProblem(f"--api {api[:100]!r}: not an HTTP URL (like {DEFAULT_API})")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(api.rstrip("/") + path, data=data, method="POST" if data is not None else "GET",
                                     headers={"Content-Type": "application/json"})
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
