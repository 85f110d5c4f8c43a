"""Health verdicts applied: a check's up/down change (lbapp.healthcheck reports it) becomes the
health of every (VIP, backend) it speaks for in the backend-state model, and the messages that
follow from it:

- the VIPs' schedulers take the new effective weights (a down backend takes no new connection);
- ``selection: switch`` VIPs' slots move (as few as possible) and their groups are modified;
- unless ``on_failure: keep`` or its VIP panics (lbapp.state.backends.Backends.in_panic: the
  checks are not believed), a down backend's sessions end (their flows deleted, so a client's
  next packet is scheduled afresh, as IPVS's expire_nodest_conn does) and its pin flows are
  withheld (its pinned connections go back through the select group).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp

from lbapp.handlers.picking import pick_flows
from lbapp.pipeline import session as session_flows
from lbapp.schedulers.slots import refuses
from lbapp.state.backends import BackendState
from lbapp.state.groups import derive_slots
from lbapp.state.health import Change
from lbapp.state.running import Running
from lbapp.state.sessions import Session, Sessions

LOG = logging.getLogger("lbapp")
Out = tuple[int, Any]


@dataclass
class Applied:
    """What applying verdicts gave: messages to send, and the failed backends' sessions the Balancer
    ends."""

    messages: list[Out] = field(default_factory=list)
    ended: dict[int, Session] = field(default_factory=dict)  # sessions of failed backends, by id: to end


def apply(changes: list[Change], running: Running, sessions: Sessions, groups: dict[int, set[int]],
          balancers: list[int]) -> Applied:
    """Apply ``changes`` to ``running`` (backends' health, schedulers' weights, slots); the
    messages for ``balancers`` (``groups``: the select groups each has) and the sessions that
    end, which the caller removes."""
    applied = Applied()
    backends = running.backends
    for change in changes:
        states = backends.checked_by(change.target)
        vip_ids = {s.vip_id for s in states}
        panicked = {vip_id for vip_id in vip_ids if backends.in_panic(vip_id)}
        for state in states:
            state.health = change.state
        panicking = {vip_id for vip_id in vip_ids if backends.in_panic(vip_id)}
        for vip_id in vip_ids:
            running.vips.by_id[vip_id].reweigh(backends.weights)
            if (vip_id in panicking) != (vip_id in panicked):
                _log_panic(running, vip_id, vip_id in panicking)
        # a panicking VIP's failed backends keep their sessions and pins: its checks are not believed
        failing = [s for s in states if not s.keep_on_failure and not (change.state == "down" and s.vip_id in panicking)]
        if change.state == "down":
            gone = {(s.vip_id, s.ip) for s in failing}
            for sess in sessions.by_id.values():
                if (sess.vip_id, sess.backend) in gone and sess.session_id not in applied.ended:
                    applied.ended[sess.session_id] = sess
                    applied.messages += [(dpid, session_flows.remove(sess.key, sess.flow_vip, sess.session_id))
                                         for dpid in balancers]
        if change.state == "down" or change.was == "down":
            applied.messages += _pins(running, failing, change.state, balancers)
    if changes:
        applied.messages += _move_slots(running, groups, balancers)
    return applied


def _log_panic(running: Running, vip_id: int, panicking: bool) -> None:
    vip = running.vips.by_id[vip_id]
    states = running.backends.of_vip(vip_id)
    passing = sum(s.health != "down" for s in states if not s.sorry)
    if panicking:
        LOG.warning("%s: panic: %d of %d backends pass their checks (panic_below %d%%): new connections go to all "
                    "of them, and failed ones keep their sessions", vip, passing, len(states), vip.model.panic_below)
    else:
        LOG.warning("%s: out of panic: %d of %d backends pass their checks", vip, passing, len(states))


def _pins(running: Running, states: list[BackendState], health: str, balancers: list[int]) -> list[Out]:
    """A failed backend's pin flow goes, and comes back with it."""
    out = []
    for state in states:
        vip = running.vips.by_id[state.vip_id]
        if vip.model.external_director:
            continue
        for dpid in balancers:
            ctx = running.sites[dpid].ctx
            msgs = ([session_flows.remove_pinned(ctx, vip.id, vip.model, state.ip)] if health == "down"
                    else session_flows.pinned_flows(ctx, vip.id, vip.model, state.ip, running.epochs.get(vip.id)))
            out += [(dpid, m) for m in msgs]
    return out


def _move_slots(running: Running, groups: dict[int, set[int]], balancers: list[int]) -> list[Out]:
    """Select groups whose slots the new weights move, modified on every balancer that has them;
    changes ``running.slots``."""
    slots = derive_slots(running.vips, running.backends.weights, running.slots)
    before = running.slots
    moved = [vip_id for vip_id in slots if slots[vip_id][1] != before.get(vip_id, (None, None))[1]]
    running.slots = slots
    out = []
    for dpid in balancers:
        ctx = running.sites[dpid].ctx
        out += [(dpid, session_flows.selection_group(ctx, vip_id, slots[vip_id][1], ofp.OFPGC_MODIFY))
                for vip_id in moved if vip_id in groups.get(dpid, set())]
        # a persistent VIP's clients follow their entries only to backends that still hold a slot
        out += [(dpid, m) for vip_id in moved
                for m in session_flows.persisted_moved(ctx, vip_id, running.vips.by_id[vip_id].model, slots[vip_id][1])]
    # no backend left, or one again: new connections go to be refused, or back to be picked
    flipped = [vip_id for vip_id in moved
               if refuses(slots[vip_id][1]) != refuses(before.get(vip_id, (None, [None]))[1])]
    return out + pick_flows(running, balancers, flipped)
