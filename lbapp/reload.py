"""A reload as a plan: from the running state and a new config to the next state and the
messages that take every switch there, computed without touching the running state, so a
reload that fails half-way changes nothing, and the plan can be tested as a value.

No connection is lost: sessions keep their flows and backends (they carry generation 0). A
change of VIPs (and the edges' backend lists) sends only the flows and groups that differ,
built for those VIPs alone (lbapp.config.changes, lbapp.pipeline.delta), under the same
generation; any other change sends every static flow under the next generation, then deletes
the previous generation's leftovers. Learned next hops stay in force (their flows are replaced in place);
select groups are modified, not replaced; backends that left keep what their live
connections need (lbapp.state.lingering).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from os_ken.ofproto import ofproto_v1_3 as ofp

from lbapp.config import Config, changes
from lbapp.pipeline import assembly, cookies, delta, meters
from lbapp.pipeline.context import Context
from lbapp.shared import VipBackend, VipKey
from lbapp.state.groups import SelectGroups
from lbapp.state.health import Health, Target
from lbapp.state.lingering import Lingering
from lbapp.state.running import Running, derive

LOG = logging.getLogger("lbapp")


@dataclass
class ReloadPlan:
    """What a reload leads to: the next running state, lingering and select groups, which the
    Balancer takes whole, and the messages that take the switches there."""

    running: Running
    lingering: Lingering
    groups: SelectGroups
    messages: list[tuple[int, Any]]


def plan_reload(before: Running, cfg: Config, lingering: Lingering, groups: SelectGroups, connected: set[int],
                live: Iterable[VipBackend], health_of: Callable[[Target], Health] | None = None) -> ReloadPlan:
    """``live``: the (VIP, backend) of every live session; ``health_of``: what each health check
    has found so far."""
    touched = _touched(before.cfg, cfg)
    # within the VIPs the flows keep their generation (those that stay are not sent again)
    after = derive(cfg, before.generation if touched is not None else before.generation % cookies.MAX_GENERATION + 1,
                   before, health_of)
    scope = None if touched is None else changes.scope_of(touched | _running_changes(before, after), before.cfg, cfg)
    balancers = connected & set(after.sites)
    lingers = lingering.after_reload(before.cfg, cfg, live, balancers)
    groups = groups.copy()
    out = [(dpid, m) for dpid in sorted(balancers) for m in lingers.pin_flows(after.sites[dpid].ctx, dpid)]
    for dpid in sorted(connected):
        out += [(dpid, m) for m in (_whole(before, after, lingers, groups, dpid) if scope is None
                                    else _within(scope, before, after, lingering, lingers, groups, dpid))]
    return ReloadPlan(after, lingers, groups, out)


def _touched(before: Config, after: Config) -> set[VipKey] | None:
    """The VIPs the new config changes (lbapp.config.changes), None when every flow is built
    again: a change beyond VIPs and edge lists, or one that changes which addresses health
    probes' answers come from (the probe stage's flows are every checked VIP's)."""
    touched = changes.touched_vips(before, after)
    if touched is not None and changes.checked(touched, before, after) and \
            Context(before).probe_answer_sources() != Context(after).probe_answer_sources():
        return None
    return touched


def _running_changes(before: Running, after: Running) -> set[VipKey]:
    """The VIPs whose running state (id, slot table, epoch, overload, withheld pins) differs:
    their flows are in the scope too."""
    def state(running: Running) -> dict[VipKey, tuple]:
        withheld: dict[int, set] = {}
        for vip_id, ip in running.backends.withheld_pins():
            withheld.setdefault(vip_id, set()).add(ip)
        return {vip.key: (vip.id, running.slots[vip.id][1] if vip.id in running.slots else None,
                          running.epochs.get(vip.id), vip.id in running.overloaded, withheld.get(vip.id))
                for vip in running.vips}
    old, new = state(before), state(after)
    return {key for key in old.keys() | new.keys() if old.get(key) != new.get(key)}


def _whole(before: Running, after: Running, lingers: Lingering, groups: SelectGroups, dpid: int) -> list[Any]:
    """Every static flow of ``dpid`` under the next generation, then the previous one's deleted."""
    static = assembly.static_flows(after, lingers, dpid)
    # a switch the config no longer names: every static flow of ours goes
    tables = static.tables if static.roles else assembly.all_tables()
    site = after.sites.get(dpid)
    added, gone = groups.change(site.ctx if site else None, dpid, after.slots)
    if site is not None:  # the meters at the new limits, before the flows that use them
        added = meters.balancer_meters(site.ctx, ofp.OFPMC_MODIFY if dpid in before.sites else ofp.OFPMC_ADD) + added
    LOG.info("switch %016x reconfigured as %s: %d flows (generation %d)", dpid, "+".join(static.roles) or "nothing",
             len(static.flows), after.generation)
    return added + static.flows + assembly.stale(tables, before.generation) + gone


def _within(scope: changes.Scope, before: Running, after: Running, lingering: Lingering, lingers: Lingering,
            groups: SelectGroups, dpid: int) -> list[Any]:
    """Only the flows and groups of ``dpid`` that differ, built for the scope's VIPs and backends."""
    site = after.sites.get(dpid)
    touched = {after.vips.by_key[key].id for key in scope.vips if key in after.vips.by_key}
    added, gone = groups.change(site.ctx if site else None, dpid, after.slots, only=touched)
    sends, removals = delta.changes(assembly.scoped_flows(before, lingering, dpid, scope.narrowed(before.cfg)),
                                    assembly.scoped_flows(after, lingers, dpid, scope.narrowed(after.cfg)))
    LOG.info("switch %016x reconfigured: %d VIPs changed: %d flows sent, %d removed, %d groups changed, %d removed "
             "(generation %d kept)", dpid, len(scope.vips), len(sends), len(removals), len(added), len(gone),
             after.generation)
    return added + sends + removals + gone
