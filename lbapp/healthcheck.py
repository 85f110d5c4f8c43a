"""Health checks at work: due probes go into a balancer switch as packet-outs (lbapp.probes says
how they travel), answers come back through the probe stage, and each up/down change of a check
(lbapp.state.health) is reported to the Balancer as a verdict, which it applies
(lbapp.handlers.verdicts). This module knows nothing of the Balancer.

A probe past its deadline is not failed at once: an answer may be waiting behind a queue of
packet-ins (a flood the balancer is busy with), and a busy balancer must not take a healthy
backend out. A barrier goes to the switch the probes left from; its reply comes after every
packet-in the switch sent before it, so by then any answer that came in time has been read, and
its round trip says how far behind the balancer is (lbapp.state.health.HealthChecks.judge).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from lbapp.pipeline.context import Context
from lbapp.pipeline.fastpath import packet_out_to_table
from lbapp.probes import Prober
from lbapp.state.health import Change, HealthChecks, Target
from lbapp.state.running import Running

LOG = logging.getLogger("lbapp")
Out = tuple[int, Any]
FIRST_BARRIER_XID = 0x1C000000  # away from os-ken's counter and the statistics requests' range
BARRIER_WAIT_S = 5.0  # a barrier unanswered this long: its late probes fail (the switch is gone or stuck)


@dataclass(frozen=True)
class Origin:
    """Where probes leave from: a connected balancer, and which targets it can route to (a
    probe toward a backend whose next hop is not known yet could only be dropped)."""

    dpid: int
    ctx: Context
    routed: Callable[[Target], bool]


def origin_of(running: Running, balancers: list[int]) -> Origin | None:
    """Health probes leave from the first connected balancer (None: none is connected)."""
    if not balancers:
        return None
    site = running.sites[balancers[0]]

    def routed(target: Target) -> bool:
        route = running.cfg.route_for(target.backend)
        return route is not None and site.next_hops.by_name[route.via].known
    return Origin(balancers[0], site.ctx, routed)


@dataclass
class Findings:
    """What a tick or a probe's answer brought: messages to send, and verdicts to apply."""

    messages: list[Out] = field(default_factory=list)
    verdicts: list[Change] = field(default_factory=list)


class Checker:
    """Owns the health checks' state (targets, rise/fall counts: ``checks``) and the probes in
    flight (``prober``). Changed only through its methods, which the Balancer calls: ``load``
    at start and on reload, ``tick`` on its clock, ``answer`` for the probe stage's packet-ins."""

    def __init__(self, seed: int | None = None) -> None:
        self.checks = HealthChecks()
        self.prober = Prober(seed)
        self.barriers: dict[int, tuple[int, float, list[int]]] = {}  # xid -> (switch, sent at, late probes)
        self._next_xid = FIRST_BARRIER_XID
        self.behind = 0.0  # the last barrier's round trip: how far behind the balancer was

    def health_of(self, target: Target) -> str:
        """What ``target``'s check has found so far ("unchecked" for a check not yet run)."""
        status = self.checks.status.get(target)
        return status.state if status is not None else "unchecked"

    def load(self, targets: Iterable[Target]) -> None:
        """The checks the running config asks for (a check kept from before keeps its state)."""
        self.checks.load(targets)
        for probe in [p for p in self.prober.open if p not in self.checks.in_flight]:
            self.prober.forget(probe)  # its check is gone: its answer is no one's

    def recheck_behind(self, running: Running, dpid: int, now: float) -> None:
        """Switch ``dpid`` (re)connected: the checks whose probes pass through it (all of them
        for a balancer, its backends' for an edge) are probed at once (lbapp.state.health.recheck)."""
        behind = None if dpid in running.sites else {ip for edge in running.ctx.edges_of(dpid) for ip in edge.backends}
        self.checks.recheck([t for t in self.checks.status if behind is None or t.backend in behind], now)

    def tick(self, now: float, origin: Origin | None) -> Findings:
        """Hold the probes that timed out for a barrier's judgement (none connected: they fail);
        fail those whose barrier never came back; send the probes due from ``origin`` (None: no
        balancer is connected, nothing is sent)."""
        found = Findings()
        late = self.checks.overdue(now)
        if late and origin is not None:
            xid = self._next_xid
            self._next_xid = FIRST_BARRIER_XID + (xid + 1 - FIRST_BARRIER_XID) % 0x1000000
            self.barriers[xid] = (origin.dpid, now, late)
            request = parser.OFPBarrierRequest(None)
            request.xid = xid
            found.messages.append((origin.dpid, request))
        elif late:
            found.verdicts += self._judge(late, 0.0)
        for xid in [x for x, (_, sent, _) in self.barriers.items() if now - sent >= BARRIER_WAIT_S]:
            found.verdicts += self._judge(self.barriers.pop(xid)[2], 0.0)
        if origin is None or not self.checks.status:
            return found
        ctx = origin.ctx
        for probe, target in self.checks.due(now, origin.routed):
            frame = self.prober.start(probe, target, origin.dpid, ctx.balancer_mac, ctx.balancer_ip,
                                      ctx.scheme.encode(target.backend))
            found.messages.append((origin.dpid, packet_out_to_table(frame, ofp.OFPP_CONTROLLER)))
        return found

    def barrier_reply(self, dpid: int, xid: int, now: float) -> list[Change]:
        """Switch ``dpid``'s reply to barrier ``xid``: its late probes still unanswered are judged
        (not one of ours, or from another switch: [])."""
        if self.barriers.get(xid, (None,))[0] != dpid:
            return []
        _, sent, late = self.barriers.pop(xid)
        self.behind = now - sent
        return self._judge(late, self.behind)

    def _judge(self, late: list[int], behind: float) -> list[Change]:
        judged, changes, void = self.checks.judge(late, behind)
        for probe in judged:
            self.prober.forget(probe)
        if void:
            LOG.warning("%d late health probes not judged: the balancer was %.2f s behind its switch", void, behind)
        return changes

    def answer(self, data: bytes) -> Findings | None:
        """A packet the probe stage punted: maybe an answer to a probe in flight (None: it is not)."""
        answered = self.prober.answer(data)
        if answered is None:
            return None
        found = Findings([(answered.dpid, packet_out_to_table(frame, ofp.OFPP_CONTROLLER))
                          for frame in answered.frames])
        if answered.verdict is not None:
            v = answered.verdict
            change = self.checks.report(v.probe, v.passed, v.reason)
            found.verdicts += [change] if change else []
        return found
