"""Sessions read back from a balancer's session table, whole: after it connects (a controller
restart or a reconnect) and every minute (lbapp.handlers.readings.RECONCILE_S). A connection's
flow that an earlier run (or this one, before a reconnect) left there is taken back, so it
counts again and its flow-removed ends it; a session of this switch whose flow the table no longer shows has ended
without the controller hearing of it (its flow-removed was lost while the switch was away).
"""
from __future__ import annotations

from dataclasses import dataclass

from lbapp import mac as macs
from lbapp.handlers.readings import FlowStat
from lbapp.pipeline import cookies
from lbapp.pipeline.actions import L4, PROTO_NAMES
from lbapp.shared import ConnKey, IPv4, VipKey
from lbapp.state.running import Running
from lbapp.state.sessions import Session, Sessions


@dataclass(frozen=True)
class FlowSession:
    """A connection's flow found in a session table."""

    session_id: int  # the object id of its cookie
    flow_vip: int  # the VIP id of its cookie (an earlier run's numbering, maybe)
    key: ConnKey | None = None  # None: a flow this run cannot read or no longer schedules
    vip_id: int = 0  # the running VIP the controller picks for, if any
    backend: IPv4 | None = None
    age: float = 0.0


def flow_session(stat: FlowStat, running: Running) -> FlowSession | None:
    """The connection a session-table flow carries; None for a flow that is no connection's."""
    decoded = cookies.decode(stat.cookie)
    if (decoded is None or decoded.stage != cookies.STAGE_SESSION or decoded.generation != 0
            or decoded.vip == cookies.LINGER_VIP or not decoded.obj or stat.eth_dst is None):
        return None
    found = FlowSession(decoded.obj, decoded.vip)
    m = dict(stat.match)
    protocol = PROTO_NAMES.get(m.get("ip_proto"))
    if protocol is None:
        return found
    _, src_field, dst_field = L4[protocol]
    try:
        key = ConnKey(m["ip_proto"], IPv4(m["ipv4_src"]), m[src_field], IPv4(m["ipv4_dst"]), m[dst_field])
        backend = running.ctx.scheme.decode(macs.parse_mac(stat.eth_dst))
    except (KeyError, ValueError, macs.MacError):
        return found
    vip = running.vips.by_key.get(VipKey.of_connection(key))
    if vip is None or not vip.controller_picks:
        return found
    return FlowSession(decoded.obj, decoded.vip, key, vip.id, backend, stat.duration)


def take_back(sessions: Sessions, running: Running, dpid: int, stats: list[FlowStat], now: float,
              seen: set[int]) -> int:
    """Take the connections of one reply part back as sessions of ``dpid`` (those of running
    VIPs the controller picks for, not known yet); how many. Every connection's flow the part
    shows goes into ``seen``."""
    adopted = 0
    for found in filter(None, (flow_session(stat, running) for stat in stats)):
        seen.add(found.session_id)
        adopted += found.key is not None and sessions.adopt(found.key, found.vip_id, found.backend, found.session_id,
                                                            found.flow_vip, now - found.age, dpid) is not None
    return adopted


def lost(sessions: Sessions, dpid: int, sent_at: float, seen: set[int]) -> list[Session]:
    """The sessions of ``dpid`` older than the reading (sent at ``sent_at``) whose flows it did
    not show (``seen``: the session ids it showed)."""
    return [s for s in sessions.by_id.values() if s.dpid == dpid and s.created < sent_at
            and s.session_id not in seen]
