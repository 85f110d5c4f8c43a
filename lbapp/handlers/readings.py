"""Statistics replies from the balancers' session tables, one handler per reason for reading
them (lbapp.state.stats lists the reasons); sessions read back after a switch connects are
lbapp.handlers.adoption's. Each flow of a reply is first told for what it counts (a
:class:`SessionFlow` or a :class:`PinFlow`), then the handler of its request's purpose takes it.
"""
from __future__ import annotations

import logging

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from lbapp.pipeline import cookies
from lbapp.pipeline import session as session_flows
from lbapp.shared import IPv4, VipIdBackend
from lbapp.state.overload import SwitchRates
from lbapp.state.pinned import PinnedCounts
from lbapp.state.running import Running
from lbapp.state.sessions import Sessions
from lbapp.state.stats import UNANSWERED_AFTER_S, Purpose, StatsRequests
from lbapp.state.traffic import Traffic

LOG = logging.getLogger("lbapp")
RECONCILE_S = 60.0  # how often each balancer's session table is read whole (and after each connect)


@dataclass(frozen=True)
class FlowStat:
    """One session-table flow from a flow statistics reply."""

    cookie: int
    byte_count: int
    duration: float = 0.0
    match: tuple[tuple[str, Any], ...] = ()  # the flow's match fields
    eth_dst: str | None = None  # the MAC its set_field action writes (a backend's fabricated MAC)
    packet_count: int = 0
    priority: int = 0


class EpochCopy(NamedTuple):
    """A ``pin: conntrack`` VIP's copy of a backend's counting flow for one epoch: its traffic
    counts as one session that ends with the epoch."""

    vip_id: int
    backend: IPv4
    epoch: int


def epoch_copy(vip_id: int, backend: IPv4, match: dict) -> EpochCopy:
    return EpochCopy(vip_id, backend, session_flows.epoch_of(match))


@dataclass(frozen=True)
class SessionFlow:
    """A flow that carries one session: a connection's own (``key`` its session id), or an
    epoch copy."""

    key: int | EpochCopy
    served: VipIdBackend


@dataclass(frozen=True)
class PinFlow:
    """A VIP's pin flow for one backend: ``selection: switch`` connections pinned in conntrack,
    or a ``pin: conntrack`` VIP's counting flow."""

    served: VipIdBackend


def counted_by(stat: FlowStat, running: Running, sessions: Sessions) -> SessionFlow | PinFlow | None:
    """What a session-table flow's counters count; None for flows that count nothing of ours
    (the VIPs' own flows, lingering pins, sessions or VIPs no longer known)."""
    decoded = cookies.decode(stat.cookie)
    if decoded is None or decoded.stage != cookies.STAGE_SESSION or not decoded.obj \
            or decoded.vip == cookies.LINGER_VIP:
        return None
    if decoded.generation == 0:  # a connection's flow
        sess = sessions.by_id.get(decoded.obj)
        return SessionFlow(sess.session_id, (sess.vip_id, sess.backend)) if sess is not None and sess.vip_id \
            else None
    backend = running.ctx.backend_by_id.get(session_flows.pinned_backend_id(decoded.obj))  # a pin flow
    if backend is None or decoded.vip not in running.vips.by_id:
        return None
    if session_flows.is_epoch_copy(decoded.obj):
        return SessionFlow(epoch_copy(decoded.vip, backend, dict(stat.match)), (decoded.vip, backend))
    return PinFlow((decoded.vip, backend))


@dataclass
class Learned:
    """What one reply part tells the Balancer to apply to state it owns."""

    live: dict[int, Counter[IPv4]] = field(default_factory=dict)  # pin: conntrack VIP -> live counts
    loads: dict[IPv4, int] | None = None  # a feedback round is complete: bytes per backend, live and ended


class Readings:
    """Owns what the controller reads back from the balancers' session tables, and what it
    keeps of it:

    - ``requests``: statistics requests in flight, matched to replies by xid, and their rounds;
    - ``traffic``: bytes and packets per (VIP, backend), of ended sessions and of live flows;
    - ``ended_bytes``: bytes of ended sessions per backend (dynamic feedback adds them to a round);
    - ``pinned``: ``pin: conntrack`` VIPs' live counts, from the switches' counting flows;
    - ``switch_rates``: new connections a second the switch picks for an overloaded VIP.

    Changed only through its methods, which the Balancer calls: :meth:`reply` for each
    statistics reply, :meth:`session_ended` and :meth:`session_gone` when a session goes,
    :meth:`due` on its clock, :meth:`disconnected` when a switch goes; the hot path counts
    ``pin: conntrack`` picks into ``pinned`` (lbapp.handlers.connections)."""

    def __init__(self) -> None:
        self.requests = StatsRequests()
        self.next_reconcile: float | None = None  # when the session tables are next read whole
        self.traffic = Traffic()
        self.ended_bytes: Counter[IPv4] = Counter()
        self.pinned = PinnedCounts()
        self.switch_rates = SwitchRates()

    def due(self, balancers: list[int], feedback_due: bool, now: float) -> list[tuple[int, Any]]:
        """The requests due at ``now`` to the connected ``balancers``: a feedback round (when
        ``feedback_due``), a traffic round while someone watches, and every
        :data:`RECONCILE_S` the session tables whole (counts then follow them even when a
        flow-removed was lost while a switch was away); requests unanswered too long are given up."""
        out = self.requests.start_round(balancers, "feedback", now) if feedback_due else []
        if self.traffic.due(now):
            out += self.requests.start_round(balancers, "traffic", now)
        if self.requests.expire(now):
            LOG.warning("statistics requests unanswered for %.0f s: given up", UNANSWERED_AFTER_S)
        if self.next_reconcile is None or now >= self.next_reconcile:
            if self.next_reconcile is not None:  # (each switch's is read as it connects)
                out += [(dpid, self.requests.request(dpid, "adopt", now)) for dpid in balancers]
            self.next_reconcile = now + RECONCILE_S
        return out

    def watched(self, now: float) -> None:
        """Someone looks at the state: traffic is read while they do."""
        self.traffic.watched(now)

    def session_ended(self, key: int | EpochCopy, served: VipIdBackend, byte_count: int, packet_count: int) -> None:
        """A session's flow is gone and told its final counters (flow-removed)."""
        self.traffic.session_ended(key, served, byte_count, packet_count)
        self.ended_bytes[served[1]] += byte_count

    def session_gone(self, session_id: int, served: VipIdBackend) -> None:
        """A session the controller dropped, or found gone: its last reading is all there is."""
        self.traffic.session_gone(session_id, served)

    def disconnected(self, dpid: int) -> None:
        self.requests.disconnected(dpid)
        self.pinned.disconnected(dpid)

    def reply(self, purpose: Purpose, dpid: int, xid: int, stats: list[FlowStat], more: bool, now: float,
              running: Running, sessions: Sessions) -> Learned:
        """One part of the reply to a request of ours for ``purpose`` (not adoption)."""
        learned = Learned()
        _PARTS[purpose](self, dpid, stats, now, running, sessions, learned)
        complete = _COMPLETE.get(purpose)
        if self.requests.answered(xid, more) and complete is not None:  # the round's last part
            complete(self, running, learned)
        return learned

    def _overload(self, dpid: int, stats: list[FlowStat], now: float, running: Running, sessions: Sessions,
                  learned: Learned) -> None:
        """The VIPs' pick flows: their packet counters are the first packets the switch picked for."""
        pick = session_flows.TABLE.priority("pick")
        for stat in stats:
            decoded = cookies.decode(stat.cookie)
            if decoded is not None and decoded.obj == 0 and stat.priority == pick:
                self.switch_rates.reading(decoded.vip, dpid, stat.packet_count, now)

    def _epoch(self, dpid: int, stats: list[FlowStat], now: float, running: Running, sessions: Sessions,
               learned: Learned) -> None:
        """A ``pin: conntrack`` VIP's counting flows at the end of an epoch: its live counts."""
        counters: dict[int, dict[IPv4, int]] = {}
        for stat in stats:
            flow = counted_by(stat, running, sessions)
            if isinstance(flow, PinFlow):
                vip_id, backend = flow.served
                counters.setdefault(vip_id, {})[backend] = stat.packet_count
        for vip_id, by_backend in counters.items():
            if vip_id in running.epochs:
                self.pinned.reading(dpid, vip_id, by_backend)
                learned.live[vip_id] = self.pinned.live(vip_id)

    def _feedback(self, dpid: int, stats: list[FlowStat], now: float, running: Running, sessions: Sessions,
                  learned: Learned) -> None:
        """Bytes per backend: of sessions, and of ``pin: conntrack`` VIPs' counting flows."""
        summed = self.requests.round("feedback").bytes
        for stat in stats:
            flow = counted_by(stat, running, sessions)
            if isinstance(flow, SessionFlow) or (flow is not None and _pins_in_conntrack(running, flow.served[0])):
                summed[flow.served[1]] += stat.byte_count

    def _feedback_done(self, running: Running, learned: Learned) -> None:
        summed = self.requests.round("feedback").bytes
        learned.loads = {ip: summed[ip] + self.ended_bytes[ip] for ip in running.backends.admin_weights_by_ip()}

    def _traffic(self, dpid: int, stats: list[FlowStat], now: float, running: Running, sessions: Sessions,
                 learned: Learned) -> None:
        reading = self.requests.round("traffic")
        for stat in stats:
            flow = counted_by(stat, running, sessions)
            if flow is not None:
                reading.bytes[flow] += stat.byte_count
                reading.packets[flow] += stat.packet_count

    def _traffic_done(self, running: Running, learned: Learned) -> None:
        reading = self.requests.round("traffic")
        flows = list(reading.bytes)
        self.traffic.reading({f.key: (f.served, reading.bytes[f], reading.packets[f])
                              for f in flows if isinstance(f, SessionFlow)},
                             {f.served: (reading.bytes[f], reading.packets[f]) for f in flows if isinstance(f, PinFlow)})


def _pins_in_conntrack(running: Running, vip_id: int) -> bool:
    vip = running.vips.by_id.get(vip_id)
    return vip is not None and vip.pins_in_conntrack


Part = Callable[[Readings, int, list[FlowStat], float, Running, Sessions, Learned], None]
_PARTS: dict[str, Part] = {"overload": Readings._overload, "epoch": Readings._epoch,
                           "feedback": Readings._feedback, "traffic": Readings._traffic}
_COMPLETE: dict[str, Callable[[Readings, Running, Learned], None]] = {
    "feedback": Readings._feedback_done, "traffic": Readings._traffic_done}
