"""The balancer's whole state as plain data (dicts, lists, strings, numbers): what status
commands, metrics and tests read, so none of them reaches into the state objects."""
from __future__ import annotations

from collections import Counter
from typing import Any, NamedTuple

from lbapp import mac as macs
from lbapp.shared import IPv4
from lbapp.state.rates import PACKET_INS


def snapshot(balancer, now: float, vip: str | None = None, offset: int = 0, limit: int | None = None
             ) -> dict[str, Any]:
    """``balancer``: a lbapp.service.Balancer; ``now``: for ages. The VIPs listed: only ``vip``
    (a name or ``ip:port/protocol``; NoSuchVip if none), or ``limit`` of them from ``offset`` in
    config order; ``vips_total`` and ``next_offset`` (None: the last page) say where a page is."""
    running = balancer.running
    backends = running.backends
    sessions = balancer.sessions
    rate = balancer.rates.per_second
    chosen = _chosen(running.vips, vip)
    page = chosen[offset:None if limit is None else offset + limit]
    vips = []
    for vip in page:
        counts = sessions.active.get(vip.id, {})
        vips.append({
            "id": vip.id, "name": vip.model.name, "vip": str(vip.key), "scheduler": vip.model.scheduler,
            "selection": "director" if vip.model.external_director else vip.model.selection,
            # where its connections are held to their backend
            "pin": None if vip.model.external_director else "conntrack" if vip.held_in_conntrack else "flow",
            "persistence": vip.model.persistence.model_dump() if vip.model.persistence else None,
            "sessions": sum(counts.values()),
            "connections": sum(sessions.total[(vip.id, s.ip)] for s in backends.of_vip(vip.id)),
            "connections_per_second": round(rate(vip.id), 2),
            "overloaded": vip.id in running.overloaded,
            "panic": running.backends.in_panic(vip.id),
            "slots": slot_counts(running.slots[vip.id][1]) if vip.id in running.slots else None,
            "backends": [reading._asdict() | {"ip": str(state.ip), "weight": state.weight,
                                              "feedback_factor": round(backends.feedback_factor(state.ip), 3),
                                              "connections_per_second": round(rate((vip.id, state.ip)), 2)}
                         for state, reading in zip(backends.of_vip(vip.id), _backend_readings(balancer, vip))],
        })
    balancers = []
    for dpid, site in running.sites.items():
        balancers.append({
            "dpid": f"{dpid:016x}", "name": site.ctx.balancer.name, "connected": dpid in balancer.connected,
            "next_hops": [{"gateway": gw.name, "ip": str(gw.ip),
                           "mac": macs.format_mac(gw.mac) if gw.mac is not None else None, "port": gw.port,
                           "age": round(now - gw.learned_at, 3) if gw.learned_at is not None else None}
                          for gw in site.next_hops.by_name.values()],
        })
    lingering = balancer.lingering
    return {
        "generation": running.generation,
        "vips": vips,
        "vips_total": len(chosen),
        "next_offset": offset + len(page) if offset + len(page) < len(chosen) else None,
        "balancers": balancers,
        "switches_connected": [f"{dpid:016x}" for dpid in sorted(balancer.connected)],
        "sessions": len(sessions),
        "lingering": {"source_nat": sorted(str(pair) for pair in lingering.nat),
                      "pins": sorted(str(pair) for pair in lingering.pins)},
        "counters": dict(balancer.counters),
        "packet_ins": balancer.packet_ins,
        "packet_ins_per_second": round(rate(PACKET_INS), 2),
        "setup_latency": balancer.setup_latency.as_data(),
        "checks": [{"check": str(target), "state": status.state, "reason": status.reason, "probes": status.probes,
                    "passes": status.passes, "failures": status.failures, "not_judged": status.not_judged}
                   for target, status in balancer.checker.checks.status.items()],
    }


class BackendReading(NamedTuple):
    """What /metrics says of one backend of a VIP (the snapshot says more)."""

    ip: IPv4
    admin: str
    health: str
    up: int  # 1 while it may take new connections: not set down, not found down
    effective_weight: int
    sessions: int
    connections: int
    bytes: int
    packets: int


def _backend_readings(balancer, vip) -> list[BackendReading]:
    """``vip``'s backends (a lbapp.state.vips entry), in config order. A scrape reads this for
    every backend: each lookup hashes an address (~0.5 us), so each pair is looked up once per map."""
    counts = balancer.sessions.active.get(vip.id) or {}
    total, traffic = balancer.sessions.total.get, balancer.readings.traffic.total
    backends = balancer.running.backends
    out = []
    for state, weight in zip(backends.of_vip(vip.id), backends.weights(vip.id)):
        pair = (vip.id, state.ip)
        out.append(BackendReading(state.ip, state.admin, state.health,
                                  0 if state.admin == "down" or state.health == "down" else 1, weight.weight,
                                  counts.get(state.ip, 0),
                                  total(pair, 0), *traffic(pair)))
    return out


def backend_readings(balancer, offset: int = 0, limit: int | None = None) -> dict[str, Any]:
    """A page of VIPs (config order) as (name, its backends' readings), and ``next_offset``
    (None: the last page): what a scrape reads, without the rest of the snapshot."""
    chosen = list(balancer.running.vips)
    page = chosen[offset:None if limit is None else offset + limit]
    return {"vips": [(vip.model.name, _backend_readings(balancer, vip)) for vip in page],
            "next_offset": offset + len(page) if offset + len(page) < len(chosen) else None}


def _chosen(vips, ref: str | None) -> list:
    if ref is None:
        return list(vips)
    found = vips.find(ref)
    if found is None:
        raise NoSuchVip(f"no VIP {ref[:100]!r}")
    return [found]


def slot_counts(slots) -> dict[str, int]:
    """Slots per backend, by address: counted first, then named (each of 256 slots named was
    most of a 1,000-VIP snapshot's time)."""
    return {str(ip): n for ip, n in Counter(slots).items() if ip is not None}


class NoSuchVip(LookupError):
    """A VIP asked for by name or key that the running config does not have."""


class NotListed(ValueError):
    """A VIP whose connections the switch's conntrack holds: no session of its own to list."""


def sessions_of(balancer, vip: str, now: float, limit: int = 1000) -> list[dict[str, Any]] | None:
    """The live sessions of VIP ``vip`` (its name or ``ip:port/protocol``), at most ``limit``;
    None for no such VIP. Raises NotListed for a VIP pinned in conntrack."""
    found = balancer.running.vips.find(vip)
    if found is None:
        return None
    if found.held_in_conntrack:
        raise NotListed(f"VIP {found.model.name} pins its connections in conntrack: they are not listed one by one "
                        "(its counts per backend are in /v1/state; on the switch: ovs-appctl dpctl/dump-conntrack "
                        "zone=27, the mark is the backend's address)")
    out = []
    for sess in balancer.sessions.by_id.values():
        if sess.vip_id == found.id:
            out.append({"id": sess.session_id, "client": f"{sess.key.src_ip}:{sess.key.src_port}",
                        "backend": str(sess.backend), "age": round(now - sess.created, 3)})
            if len(out) >= limit:
                break
    return out
