"""The controller's HTTP API (JSON), on the standard library's threading HTTP server: the state
snapshot, a VIP's sessions, and runtime changes to a backend, written to the config file and
applied as a reload. Listens on 127.0.0.1 unless told otherwise.

    GET  /metrics                           Prometheus text format (lbapp.metrics)
    GET  /v1/state[?vip=VIP|?offset=N&limit=M]  the snapshot (lbapp.snapshot): one VIP, or a page of them
    GET  /v1/vips/VIP/sessions              a VIP's live sessions (at most 1,000)
    GET  /v1/vips/VIP/pick?client=IP:PORT   the backend a new connection from there would get now, and why
    POST /v1/vips/VIP/backends/IP           {"action": "drain"|"enable"|"down"|"weight", "weight": N}
    POST /v1/reload                         re-read the config file (as SIGHUP does)

VIP is a name or ``ip:port/protocol`` (URL-encoded). Errors are JSON ``{"error": ..., "errors":
[field-path messages]}`` with 400 (bad request or config), 401 (no token), 403 (a wrong token),
404 (no such thing), 413 (a body over 64 KiB) or 500.

A POST needs ``Authorization: Bearer TOKEN``, the token in the file only the controller's user
can read (lbapp.apitoken); a GET needs it too when it comes from another host than this one.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote

from lbapp import apitoken, metrics
from lbapp.config import ConfigError
from lbapp.configedit import NotFound
from lbapp.predict import BadClient
from lbapp.snapshot import NoSuchVip, NotListed

LOG = logging.getLogger("lbapp")
MAX_BODY = 64 * 1024
REQUEST_TIMEOUT_S = 5.0
MAX_CONCURRENT = 16
_slots = threading.BoundedSemaphore(MAX_CONCURRENT)


class Controller(Protocol):
    """What the API asks of the running controller (lbapp.app.LbApp)."""

    def api_state(self, **page: Any) -> dict[str, Any]: ...

    def api_readings(self, offset: int, limit: int) -> dict[str, Any]: ...

    def api_sessions(self, vip: str) -> list[dict[str, Any]] | None: ...

    def api_predict(self, vip: str, client: str) -> dict[str, Any] | None: ...

    def api_change_backend(self, vip: str, backend: str, action: str, weight: int | None) -> dict[str, Any]: ...

    def api_reload(self) -> dict[str, Any]: ...


class ApiError(Exception):
    def __init__(self, status: int, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.status, self.errors = status, errors or []


def serve(controller: Controller, host: str, port: int, token: str, token_file: str = "") -> ThreadingHTTPServer:
    """Start the API in a daemon thread; returns the server (``shutdown()`` stops it). Writes need
    ``token`` (kept in ``token_file``, named in the refusal)."""
    handler = type("Handler", (_Handler,), {"controller": controller, "token": token, "token_file": token_file,
                                            "metrics": metrics.Scraper(controller.api_readings, controller.api_state)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="lbapp-api", daemon=True).start()
    LOG.info("lbapp: API on http://%s:%d/v1/state", host, server.server_address[1])
    return server


MAX_PAGE = 10_000


def _page(query: dict[str, list[str]]) -> dict[str, Any]:
    """/v1/state's query: ``vip``, or ``offset`` and ``limit`` (1 to MAX_PAGE); ApiError naming a bad one."""
    unknown = set(query) - {"vip", "offset", "limit"}
    if unknown:
        raise ApiError(400, f"/v1/state takes vip, offset and limit, not {', '.join(sorted(unknown))[:100]}")
    page: dict[str, Any] = {"vip": query["vip"][0]} if "vip" in query else {}
    for name, lowest, highest in (("offset", 0, None), ("limit", 1, MAX_PAGE)):
        if name in query:
            text = query[name][0]
            value = int(text) if text.isdigit() else -1
            if value < lowest or (highest is not None and value > highest):
                raise ApiError(400, f"{name}: {text[:40]!r}: a whole number from {lowest}"
                                    + (f" to {highest}" if highest else " on"))
            page[name] = value
    return page


class _Handler(BaseHTTPRequestHandler):
    """Answers one HTTP request; ``serve`` gives its subclass the ``controller`` and the ``metrics``
    registry. It keeps no state: reads and changes go through the controller's ``api_*`` methods,
    which take its locks."""

    controller: Controller
    token: str
    token_file: str
    timeout = REQUEST_TIMEOUT_S  # a client that stalls holds its thread this long at most
    server_version = "lbapp"

    def handle_one_request(self) -> None:
        """At most MAX_CONCURRENT requests at once; the rest get 503 at once (the standard
        library's server starts a thread per connection)."""
        if not _slots.acquire(blocking=False):
            self.raw_requestline = self.rfile.readline(65537)
            if self.raw_requestline and self.parse_request():
                self.send_error(503, "busy: too many requests at once")
            self.close_connection = True
            return
        try:
            super().handle_one_request()
        finally:
            _slots.release()

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        if not self._from_this_host() and not self._authorized():
            return
        if self.path.split("?", 1)[0] == "/metrics":
            self._metrics()
            return
        self._answer(self._get)

    def _metrics(self) -> None:
        try:
            pieces, status, kind = self.metrics.scrape(), 200, metrics.CONTENT_TYPE_LATEST
        except Exception:  # noqa: BLE001 - as for JSON calls: logged, answered, the API goes on
            LOG.exception("API: /metrics failed")
            pieces, status, kind = [b"internal error (see the controller's log)\n"], 500, "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(sum(map(len, pieces))))
        self.end_headers()
        batch: list[bytes] = []
        size = 0
        for piece in pieces:  # a write per megabyte, not per piece (the socket's writer is unbuffered)
            batch.append(piece)
            size += len(piece)
            if size >= 1 << 20:
                self.wfile.write(b"".join(batch))
                batch, size = [], 0
        self.wfile.write(b"".join(batch))

    def do_POST(self) -> None:  # noqa: N802
        if self._authorized():
            self._answer(self._post)

    def _from_this_host(self) -> bool:
        return ipaddress.ip_address(self.client_address[0]).is_loopback

    def _authorized(self) -> bool:
        """Whether the request carries the token; if not, it is answered (401 or 403) here."""
        given = self.headers.get("Authorization")
        if apitoken.accepts(self.token, given):
            return True
        where = f" (the token is in {self.token_file}: lbapp backend reads it)" if self.token_file else ""
        status, why = (401, "this needs the API token") if given is None else (403, "wrong API token")
        LOG.warning("API: %s %s from %s refused: %s", self.command, self.path[:200], self.client_address[0], why)
        self._send_json(status, {"error": why + where, "errors": []})
        self.close_connection = True  # the body, if any, is left unread
        return False

    def _get(self, parts: list[str]) -> Any:
        if parts == ["v1", "state"]:
            try:
                page = _page(parse_qs(self.path.partition("?")[2]))
                # the whole state a page of VIPs at a time, as a scrape reads it (lbapp.metrics.paged)
                return self.controller.api_state(**page) if page else metrics.paged(self.controller.api_state)()
            except NoSuchVip as exc:
                raise ApiError(404, str(exc)) from None
        if len(parts) == 4 and parts[:2] == ["v1", "vips"] and parts[3] == "sessions":
            try:
                found = self.controller.api_sessions(parts[2])
            except NotListed as exc:
                raise ApiError(409, str(exc)) from None
            if found is None:
                raise ApiError(404, f"no VIP {parts[2]!r}")
            return found
        if len(parts) == 4 and parts[:2] == ["v1", "vips"] and parts[3] == "pick":
            client = parse_qs(self.path.partition("?")[2]).get("client", [""])[0]
            try:
                found = self.controller.api_predict(parts[2], client)
            except BadClient as exc:
                raise ApiError(400, str(exc)) from None
            if found is None:
                raise ApiError(404, f"no VIP {parts[2]!r}")
            return found
        raise ApiError(404, f"no such resource: GET {self.path[:200]}")

    def _post(self, parts: list[str]) -> Any:
        body = self._body()
        if parts == ["v1", "reload"]:
            return self.controller.api_reload()
        if len(parts) == 5 and parts[:2] == ["v1", "vips"] and parts[3] == "backends":
            action, weight = body.get("action"), body.get("weight")
            if not isinstance(action, str):
                raise ApiError(400, "the body needs an action: drain, enable, down or weight")
            if weight is not None and (isinstance(weight, bool) or not isinstance(weight, int)):
                raise ApiError(400, f"weight: an integer, not {str(weight)[:40]!r}")
            return self.controller.api_change_backend(parts[2], parts[4], action, weight)
        raise ApiError(404, f"no such resource: POST {self.path[:200]}")

    def _body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise ApiError(400, "Content-Length is not a number") from None
        if length < 0:
            raise ApiError(400, f"Content-Length {length}: not a length")
        if length > MAX_BODY:
            raise ApiError(413, f"a body of {length} bytes: at most {MAX_BODY}")
        if not length:
            return {}
        data = bytearray()
        deadline = time.monotonic() + REQUEST_TIMEOUT_S  # the whole body, not each read
        while len(data) < length:
            try:
                chunk = self.rfile.read1(length - len(data)) if time.monotonic() < deadline else b""
            except TimeoutError:  # the socket's own timeout: a read that waited too long
                chunk = b""
            if not chunk:
                raise ApiError(400, f"the body ended (or stalled) after {len(data)} of {length} bytes")
            data += chunk
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        return body

    def _answer(self, route) -> None:
        parts = [unquote(p) for p in self.path.split("?", 1)[0].strip("/").split("/") if p]
        try:
            status, result = 200, route(parts)
        except ApiError as exc:
            status, result = exc.status, {"error": str(exc), "errors": exc.errors}
        except ConfigError as exc:
            status, result = 400, {"error": f"{exc.source}: refused", "errors": [str(e) for e in exc.errors]}
        except NotFound as exc:
            status, result = 404, {"error": str(exc), "errors": []}
        except Exception:  # the API never takes the controller down; the log has the cause
            LOG.exception("API: %s %s failed", self.command, self.path)
            status, result = 500, {"error": "internal error (see the controller's log)", "errors": []}
        self._send_json(status, result)

    def _send_json(self, status: int, result: Any) -> None:
        data = json.dumps(result, indent=1).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt: str, *args: Any) -> None:
        LOG.debug("API: " + fmt, *args)
