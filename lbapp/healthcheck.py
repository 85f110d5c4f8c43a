"""Health checks at work: due probes go into a balancer switch as packet-outs (lbapp.probes says
how they travel), answers come back through the probe stage, and each up/down change of a check
(lbapp.state.health) is reported to the Balancer as a verdict, which it applies
(lbapp.handlers.verdicts). This module knows nothing of the Balancer.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp

from lbapp.pipeline.context import Context
from lbapp.pipeline.fastpath import packet_out_to_table
from lbapp.probes import Prober
from lbapp.state.health import Change, HealthChecks, Target
from lbapp.state.running import Running

Out = tuple[int, Any]


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
        """Fail the probes that timed out; send the ones due from ``origin`` (None: no balancer
        is connected, nothing is sent)."""
        late, changes = self.checks.expired(now)
        for probe in late:
            self.prober.forget(probe)
        found = Findings(verdicts=changes)
        if origin is None or not self.checks.status:
            return found
        ctx = origin.ctx
        for probe, target in self.checks.due(now, origin.routed):
            frame = self.prober.start(probe, target, origin.dpid, ctx.balancer_mac, ctx.balancer_ip,
                                      ctx.scheme.encode(target.backend))
            found.messages.append((origin.dpid, packet_out_to_table(frame, ofp.OFPP_CONTROLLER)))
        return found

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
