"""The etcd client lbapp uses: etcd's v3 JSON gateway through etcd3gw (a well-kept OpenStack
library). Each call is bounded by ``timeout``; a member that cannot be reached is tried after
the next. Errors come out as :class:`EtcdUnavailable` with one line saying what failed."""
from __future__ import annotations

import base64
import logging
import warnings
from urllib.parse import urlparse

LOG = logging.getLogger("lbapp")


class EtcdUnavailable(RuntimeError):
    """No etcd member answered (or it refused the request)."""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def parse_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an etcd member's client URL; ValueError naming what is wrong."""
    try:
        where = urlparse(url)
        port = where.port or 2379
    except ValueError:
        where, port = None, 0
    if where is None or where.scheme not in ("http", "https") or not where.hostname:
        raise ValueError(f"{url[:100]!r}: not an etcd client URL (http://HOST:PORT)")
    return where.scheme, where.hostname, port


def _client(url: str, timeout: float):
    with warnings.catch_warnings():  # etcd3gw's futurist imports eventlet, which warns on import
        warnings.simplefilter("ignore")
        from etcd3gw.client import Etcd3Client
    scheme, host, port = parse_url(url)
    return Etcd3Client(host=host, port=port, protocol=scheme, timeout=timeout)


class Etcd:
    """The cluster's etcd members, by URL."""

    def __init__(self, urls: list[str], timeout: float = 1.0) -> None:
        if not urls:
            raise ValueError("no etcd URL")
        self.urls = list(urls)
        self.clients = [_client(url, timeout) for url in self.urls]
        self._first = 0  # the member that answered last

    def _call(self, what: str, fn):
        errors = []
        for i in range(len(self.clients)):
            index = (self._first + i) % len(self.clients)
            try:
                result = fn(self.clients[index])
                self._first = index
                return result
            except Exception as exc:  # etcd3gw raises its own and requests' errors: any is "unreachable"
                said = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
                errors.append(f"{self.urls[index]}: {said}")
        raise EtcdUnavailable(f"etcd {what}: " + "; ".join(errors))

    def grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds: its id."""
        granted = self._call("lease grant", lambda c: c.post(c.get_url("/lease/grant"), json={"TTL": ttl, "ID": 0}))
        return int(granted["ID"])

    def keepalive(self, lease: int) -> bool:
        """Renew ``lease``; False when it is gone (expired or revoked)."""
        answer = self._call("lease keep-alive", lambda c: c.post(c.get_url("/lease/keepalive"), json={"ID": lease}))
        return int(answer.get("result", {}).get("TTL", 0)) > 0

    def revoke(self, lease: int) -> None:
        self._call("lease revoke", lambda c: c.post(c.get_url("/kv/lease/revoke"), json={"ID": lease}))

    def create(self, key: str, value: str, lease: int = 0) -> int | None:
        """Put ``key`` (with ``lease``, 0: none) if it does not exist: the revision it was
        created at, or None if it exists."""
        return self._put_if(key, value, lease, {"target": "CREATE", "create_revision": 0})

    def replace(self, key: str, value: str, mod_revision: int) -> int | None:
        """Put ``key`` if it was last changed at ``mod_revision``: the new revision, or None if
        someone changed it since."""
        return self._put_if(key, value, 0, {"target": "MOD", "mod_revision": mod_revision})

    def _put_if(self, key: str, value: str, lease: int, compare: dict) -> int | None:
        def txn(c):
            k = _b64(key)  # the JSON gateway takes keys and values base64-encoded
            put = {"key": k, "value": _b64(value), **({"lease": lease} if lease else {})}
            return c.transaction({"compare": [{"key": k, "result": "EQUAL", **compare}],
                                  "success": [{"request_put": put}], "failure": []})
        answer = self._call("conditional put", txn)
        return int(answer["header"]["revision"]) if answer.get("succeeded") else None

    def put(self, key: str, value: str, lease: int = 0) -> None:
        """Put ``key`` (with ``lease``, 0: none: it goes when the lease does)."""
        body = {"key": _b64(key), "value": _b64(value), **({"lease": lease} if lease else {})}
        self._call("put", lambda c: c.post(c.get_url("/kv/put"), json=body))

    def under(self, prefix: str) -> dict[str, str]:
        """Every key under ``prefix``, with its value."""
        found = self._call("get prefix", lambda c: c.get_prefix(prefix))
        return {(meta["key"].decode() if isinstance(meta["key"], bytes) else meta["key"]):
                (value.decode() if isinstance(value, bytes) else value) for value, meta in found}

    def get(self, key: str) -> tuple[str, int, int] | None:
        """``key``'s value, the revision it was created at and the one it last changed at, or None."""
        found = self._call("get", lambda c: c.get(key, metadata=True))
        if not found:
            return None
        value, meta = found[0]
        text = value.decode() if isinstance(value, bytes) else value
        return text, int(meta["create_revision"]), int(meta["mod_revision"])
