"""A reload as a plan: from the running state and a new config to the next state and the
messages that take every switch there, computed without touching the running state, so a
reload that fails half-way changes nothing, and the plan can be tested as a value.

No connection is lost: sessions keep their flows and backends (they carry generation 0);
the new static flows go in under the next generation, then the previous generation's
leftovers are deleted; learned next hops stay in force (their flows are replaced in place);
select groups are modified, not replaced; backends that left keep what their live
connections need (lbapp.state.lingering).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from os_ken.ofproto import ofproto_v1_3 as ofp

from lbapp.config import Config
from lbapp.pipeline import assembly, cookies, meters
from lbapp.shared import VipBackend
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
    after = derive(cfg, before.generation % cookies.MAX_GENERATION + 1, before, health_of)
    balancers = connected & set(after.sites)
    lingers = lingering.after_reload(before.cfg, cfg, live, balancers)
    groups = groups.copy()
    out = [(dpid, m) for dpid in sorted(balancers) for m in lingers.pin_flows(after.sites[dpid].ctx, dpid)]
    for dpid in sorted(connected):
        static = assembly.static_flows(after, lingers, dpid)
        # a switch the config no longer names: every static flow of ours goes
        tables = static.tables if static.roles else assembly.all_tables()
        site = after.sites.get(dpid)
        added, gone = groups.change(site.ctx if site else None, dpid, after.slots)
        if site is not None:  # the meters at the new limits, before the flows that use them
            added = meters.balancer_meters(site.ctx, ofp.OFPMC_MODIFY if dpid in before.sites else ofp.OFPMC_ADD) + added
        out += [(dpid, m) for m in added + static.flows + assembly.stale(tables, before.generation) + gone]
        LOG.info("switch %016x reconfigured as %s: %d flows (generation %d)", dpid, "+".join(static.roles) or "nothing",
                 len(static.flows), after.generation)
    return ReloadPlan(after, lingers, groups, out)
