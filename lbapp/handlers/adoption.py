"""Sessions read back from a balancer's session table, whole: after it connects (a controller
restart or a reconnect), every minute (lbapp.handlers.readings.RECONCILE_S), and when someone
else deleted a session's flow. A connection's flow that an earlier run (or this one, before a
reconnect) left there is taken back, so it counts again and its flow-removed ends it.

A session of this switch whose flow the table no longer shows either ended without the
controller hearing of it (its flow idled out while the switch was away, and the flow-removed was
lost), or the switch lost it with its tables (a restart, a wipe, a flush). The table's "kept"
mark tells which (lbapp.pipeline.session.kept_mark): with the mark there, the table is the one
the controller read before, so the session ended and is forgotten; without it, the switch lost
its tables, and every session the controller remembers gets its flow back (its connection
keeps its backend; a session that had ended idles out again).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from lbapp import mac as macs
from lbapp.handlers.readings import FlowStat
from lbapp.pipeline import cookies
from lbapp.pipeline import session as session_flows
from lbapp.pipeline.actions import L4, PROTO_NAMES
from lbapp.pipeline.fastpath import SessionTemplate
from lbapp.shared import ConnKey, IPv4, VipKey
from lbapp.state.running import Running
from lbapp.state.sessions import Session, Sessions
from lbapp.state.stats import Adoption, StatsRequests

LOG = logging.getLogger("lbapp")
Out = tuple[int, Any]


@dataclass(frozen=True)
class FoundConnection:
    """A connection's flow found in a session table."""

    session_id: int  # the object id of its cookie
    flow_vip: int  # the VIP id of its cookie (an earlier run's numbering, maybe)
    key: ConnKey | None = None  # None: a flow this run cannot read or no longer schedules
    vip_id: int = 0  # the running VIP the controller picks for, if any
    backend: IPv4 | None = None
    age: float = 0.0


def found_connection(stat: FlowStat, running: Running) -> FoundConnection | None:
    """The connection a session-table flow carries; None for a flow that is no connection's."""
    decoded = cookies.decode(stat.cookie)
    if (decoded is None or decoded.stage != cookies.STAGE_SESSION or decoded.generation != 0
            or decoded.vip == cookies.LINGER_VIP or not decoded.obj or stat.eth_dst is None):
        return None
    found = FoundConnection(decoded.obj, decoded.vip)
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
    return FoundConnection(decoded.obj, decoded.vip, key, vip.id, backend, stat.duration)


def take_back(sessions: Sessions, running: Running, dpid: int, stats: list[FlowStat], now: float,
              reading: Adoption) -> int:
    """Take the connections of one reply part back as sessions of ``dpid`` (those of running
    VIPs the controller picks for, not known yet); how many. ``reading`` notes every
    connection's flow the part shows, and the table's kept mark."""
    adopted = 0
    reading.kept = reading.kept or any(session_flows.is_kept_mark(stat.cookie) for stat in stats)
    for found in filter(None, (found_connection(stat, running) for stat in stats)):
        reading.seen.add(found.session_id)
        adopted += found.key is not None and sessions.adopt(found.key, found.vip_id, found.backend, found.session_id,
                                                            found.flow_vip, now - found.age, dpid) is not None
    if adopted:
        LOG.info("switch %016x: took back %d sessions already in its session table", dpid, adopted)
    return adopted


def settle(running: Running, sessions: Sessions, dpid: int, reading: Adoption) -> tuple[list[Out], list[Session]]:
    """The whole table has been read: the sessions of ``dpid`` older than the reading whose
    flows it did not show are forgotten (the table was kept: they ended) or restored (it was
    not). The flows that restore them, and the sessions that end (for the caller to end)."""
    missing = [s for s in sessions.by_id.values() if s.dpid == dpid and s.created < reading.sent_at
               and s.session_id not in reading.seen]
    if reading.kept:
        if missing:
            LOG.warning("switch %016x: %d sessions are no longer in its session table: forgotten", dpid, len(missing))
        return [], missing
    out, gone = restore(running, sessions, dpid, missing)
    if missing or not reading.after_install:
        LOG.warning("switch %016x lost its session table%s: %d connections' flows restored", dpid,
                    "" if reading.after_install else " (flushed while connected: its static flows go back too)",
                    len(out))
    return out, gone


def give_back(running: Running, sessions: Sessions, requests: StatsRequests, dpid: int, sess: Session,
              now: float) -> list[Out]:
    """Someone else deleted ``sess``'s flow (the controller forgets a session before it deletes
    its flow): the flow that gives it back, and a reading of the table, unless one is on its
    way (was the rest flushed too?). Nothing when it cannot have it back (see :func:`restore`)."""
    out, gone = restore(running, sessions, dpid, [sess])
    if gone:
        return []
    if requests.waiting(dpid, "adopt"):
        requests.shown_anyway(dpid, sess.session_id)
        return out
    return out + [(dpid, requests.request(dpid, "adopt", now))]


def restore(running: Running, sessions: Sessions, dpid: int, lost: list[Session]) -> tuple[list[Out], list[Session]]:
    """The flows that give ``lost`` sessions back to the switch ``dpid``, and the sessions that
    cannot have theirs (their VIP left the config, or no longer takes per-connection flows)."""
    out: list[Out] = []
    gone = []
    for sess in lost:
        vip = running.vips.by_id.get(sess.vip_id) if sess.vip_id else None
        if vip is None or not isinstance(vip.template, SessionTemplate):
            gone.append(sess)
            continue
        sessions.flow_under(sess, vip.id)
        out.append((dpid, vip.template.render(sess.key, sess.session_id, running.ctx.scheme.encode(sess.backend))))
    return out, gone
