"""Which backend a new connection would get now, and why: what ``lbapp trace`` adds to a
switch's trace, since the controller's pick is in no flow table until it is made. Read-only:
nothing the prediction asks moves a scheduler or a count."""
from __future__ import annotations

import ipaddress
from typing import Any

from lbapp.shared import ConnKey, IPv4
from lbapp.snapshot import slot_counts


class BadClient(ValueError):
    """The client is not ``IPv4:port``."""


def parse_client(client: str) -> tuple[IPv4, int]:
    ip, sep, port = client.rpartition(":")
    try:
        address, number = ipaddress.IPv4Address(ip), int(port)
    except ValueError:
        address = number = None
    if not sep or address is None or not 0 <= number <= 0xFFFF:
        raise BadClient(f"client: IPv4:port expected, not {client[:60]!r}")
    return address, number


def predict(balancer, vip_ref: str, client: str, now: float) -> dict[str, Any] | None:
    """``balancer``: a lbapp.service.Balancer. None for no such VIP; BadClient for a bad client."""
    vip = balancer.running.vips.find(vip_ref)
    if vip is None:
        return None
    ip, port = parse_client(client)
    key = ConnKey(vip.key.protocol, ip, port, vip.key.ip, vip.key.port)
    answer = {"vip": vip.model.name, "key": str(vip.key), "client": f"{ip}:{port}", "scheduler": vip.model.scheduler}
    session = balancer.sessions.get(key)
    if session is not None:
        return answer | {"picked_by": "session", "backend": str(session.backend),
                         "why": f"session {session.session_id} already pins this connection to it"}
    if vip.model.external_director:
        return answer | {"picked_by": "director", "backend": None,
                         "why": "an external director picks for this VIP; lbapp only translates"}
    if vip.switch_picks or vip.id in balancer.running.overloaded:
        slots = balancer.running.slots.get(vip.id)
        shares = ", ".join(f"{b} {n}" for b, n in slot_counts(slots[1]).items()) if slots else ""
        return answer | {"picked_by": "switch", "backend": None,
                         "why": ("overloaded: " if vip.controller_picks else "")
                                + "the switch hashes the five-tuple (dp_hash) into one of 256 slots: "
                                + (f"slots per backend {shares}" if shares else "no backend: refused")}
    backend, why = vip.scheduler.predict(key, balancer.sessions.counts(vip.id), now)
    if backend is None:
        why += "; no backend can take it: the connection would be refused"
    return answer | {"picked_by": "controller", "backend": str(backend) if backend is not None else None, "why": why}
