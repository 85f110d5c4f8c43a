"""Health checks at work: due probes go into a balancer switch as packet-outs (lbapp.probes says
how they travel), answers come back through the probe stage, and an up/down change of a check
(lbapp.state.health) becomes the health of every (VIP, backend) it speaks for in the
backend-state model, and the messages that follow from it:

- the VIPs' schedulers take the new effective weights (a down backend takes no new connection);
- ``selection: switch`` VIPs' slots move (as few as possible) and their groups are modified;
- unless ``on_failure: keep``, a down backend's sessions are removed (their flows deleted, so
  a client's next packet is scheduled afresh, as IPVS's expire_nodest_conn does) and its pin
  flows withheld (its pinned connections go back through the select group).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from os_ken.ofproto import ofproto_v1_3 as ofp

from lbapp.pipeline import session
from lbapp.pipeline.fastpath import packet_out_to_table
from lbapp.probes import Prober
from lbapp.state.groups import derive_slots
from lbapp.state.health import Change, HealthChecks, Target

if TYPE_CHECKING:
    from lbapp.service import Balancer

LOG = logging.getLogger("lbapp")
Out = tuple[int, Any]


class Checker:
    def __init__(self, seed: int | None = None) -> None:
        self.checks = HealthChecks()
        self.prober = Prober(seed)

    def health_of(self, target: Target) -> str:
        """What ``target``'s check has found so far ("unchecked" for a check not yet run)."""
        status = self.checks.status.get(target)
        return status.state if status is not None else "unchecked"

    def load(self, lb: "Balancer") -> None:
        """The checks the running config asks for (a check kept from before keeps its state)."""
        self.checks.load(lb.running.backends.targets())
        for probe in [p for p in self.prober.open if p not in self.checks.in_flight]:
            self.prober.forget(probe)  # its check is gone: its answer is no one's

    def tick(self, lb: "Balancer", now: float) -> list[Out]:
        """Fail the probes that timed out; send the ones due, from the first connected balancer
        whose next hop toward the backend is known (else the probe could only be dropped)."""
        late, changes = self.checks.expired(now)
        for probe in late:
            self.prober.forget(probe)
        out = self.changed(lb, changes)
        dpid = next(iter(lb.balancers_connected()), None)
        if dpid is None or not self.checks.status:
            return out
        site = lb.running.sites[dpid]

        def routed(target: Target) -> bool:
            route = lb.cfg.route_for(target.backend)
            return route is not None and site.next_hops.by_name[route.via].known

        scheme = site.ctx.scheme
        for probe, target in self.checks.due(now, routed):
            frame = self.prober.start(probe, target, dpid, site.ctx.balancer_mac, site.ctx.balancer_ip,
                                      scheme.encode(target.backend))
            out.append((dpid, packet_out_to_table(frame, ofp.OFPP_CONTROLLER)))
        return out

    def answer(self, lb: "Balancer", data: bytes) -> list[Out]:
        """A packet the probe stage punted: maybe an answer to a probe in flight."""
        answered = self.prober.answer(data)
        if answered is None:
            lb.counters["stray_probe_answer"] += 1
            return []
        out = [(answered.dpid, packet_out_to_table(frame, ofp.OFPP_CONTROLLER)) for frame in answered.frames]
        if answered.verdict is not None:
            v = answered.verdict
            change = self.checks.report(v.probe, v.passed, v.reason)
            out += self.changed(lb, [change] if change else [])
        return out

    def changed(self, lb: "Balancer", changes: list[Change]) -> list[Out]:
        out: list[Out] = []
        running = lb.running
        for change in changes:
            states = running.backends.checked_by(change.target)
            for state in states:
                state.health = change.state
            for vip_id in {s.vip_id for s in states}:
                running.vips.by_id[vip_id].reweigh(running.backends.weights)
            if change.state == "down":
                out += self._expire(lb, [s for s in states if not s.keep_on_failure])
            if change.state == "down" or change.was == "down":
                out += self._pins(lb, [s for s in states if not s.keep_on_failure], change.state)
        if changes:
            out += self._move_slots(lb)
        return out

    def _expire(self, lb: "Balancer", states) -> list[Out]:
        """A failed backend's sessions go: their flows, on every balancer (a delete that finds
        nothing is harmless), and their counts."""
        gone = {(s.vip_id, s.ip) for s in states}
        doomed = [sess for sess in lb.sessions.by_id.values() if (sess.vip_id, sess.backend) in gone]
        balancers = lb.balancers_connected()
        out = []
        for sess in doomed:
            lb.sessions.remove(sess.session_id)
            lb.traffic.session_gone(sess.session_id, (sess.vip_id, sess.backend))
            out += [(dpid, session.remove(sess.key, sess.flow_vip, sess.session_id)) for dpid in balancers]
        if doomed:
            LOG.warning("removed %d sessions of failed backends %s", len(doomed),
                        ", ".join(sorted(str(ip) for _, ip in gone)))
        return out

    def _pins(self, lb: "Balancer", states, health: str) -> list[Out]:
        """A failed backend's pin flow goes, and comes back with it."""
        out = []
        for state in states:
            vip = lb.running.vips.by_id[state.vip_id]
            if vip.model.external_director:
                continue
            for dpid in lb.balancers_connected():
                ctx = lb.running.sites[dpid].ctx
                msgs = ([session.remove_pinned(ctx, vip.id, vip.model, state.ip)] if health == "down"
                        else session.pinned_flows(ctx, vip.id, vip.model, state.ip, lb.running.epochs.get(vip.id)))
                out += [(dpid, m) for m in msgs]
        return out

    def _move_slots(self, lb: "Balancer") -> list[Out]:
        """Select groups whose slots the new weights move, modified on every balancer that has them."""
        running = lb.running
        slots = derive_slots(running.vips, running.backends.weights, running.slots)
        before = running.slots
        moved = [vip_id for vip_id in slots if slots[vip_id][1] != before.get(vip_id, (None, None))[1]]
        running.slots = slots
        out = []
        for dpid in lb.balancers_connected():
            ctx = running.sites[dpid].ctx
            out += [(dpid, session.selection_group(ctx, vip_id, slots[vip_id][1], ofp.OFPGC_MODIFY))
                    for vip_id in moved if vip_id in lb.groups.installed.get(dpid, set())]
        # no backend left, or one again: new connections go to be refused, or back to be picked
        flipped = [vip_id for vip_id in moved
                   if (None in slots[vip_id][1]) != (None in before.get(vip_id, (None, [None]))[1])]
        return out + lb.pick_flows(flipped)
