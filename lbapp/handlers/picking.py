"""Who picks a controller-picked VIP's new connections: the controller, or, while it is flooded
with them, the switch's own path (its select group, pinned in conntrack: lbapp.state.overload),
or nobody (no backend left: refused). The VIP's pick flows say which."""
from __future__ import annotations

import logging
from typing import Any

from lbapp.config import BalancerModel
from lbapp.pipeline import session as session_flows
from lbapp.schedulers.slots import refuses
from lbapp.state import overload
from lbapp.state.rates import Rates
from lbapp.state.running import Running
from lbapp.state.stats import StatsRequests

LOG = logging.getLogger("lbapp")
Out = tuple[int, Any]


def pick_flows(running: Running, balancers: list[int], vip_ids: list[int]) -> list[Out]:
    """Each VIP's pick flows, as the running state has them, on every balancer in ``balancers``."""
    out: list[Out] = []
    for dpid in balancers:
        ctx = running.sites[dpid].ctx
        for vip_id in vip_ids:
            slots = running.slots.get(vip_id, (None, [None]))[1]
            out += [(dpid, m) for m in session_flows.pick_flows(ctx, vip_id, running.vips.by_id[vip_id].model,
                                                                refuses(slots), vip_id in running.overloaded)]
    return out


def weigh_overload(running: Running, rates: Rates, switch_rates: overload.SwitchRates, requests: StatsRequests,
                   limits: BalancerModel, balancers: list[int], now: float) -> list[Out]:
    """Hand a controller-picked VIP flooded with new connections to the switch's own path, and
    back once the flood is over. Each second every VIP's pick-flow counters are read: they count
    the first packets the punt meter dropped, and, while the switch picks, the new connections
    the controller no longer sees. Changes ``running.overloaded``."""
    mine = [vip.id for vip in running.vips if vip.controller_picks]
    # what the switch's pick flows counted (every first packet, the ones its meter dropped too),
    # or what reached the controller if no reading came yet
    per_second = {v: max(rates.per_second(v), switch_rates.of_vip(v)) for v in mine}
    budget = limits.punt_limit * overload.BUDGET_SHARE
    verdict = overload.decide(running.overloaded, per_second, mine, limits.overload_above, limits.overload_hold, now,
                              budget)
    for vip_id in verdict.entered:
        why = (f"over {limits.overload_above}" if per_second[vip_id] > limits.overload_above else
               f"{sum(per_second.values()):.0f}/s to all VIPs, over {budget:.0f} (of punt_limit {limits.punt_limit})")
        LOG.warning("%s: %.0f new connections/s, %s: the switch picks for it (its select group, pinned in "
                    "conntrack) for %g s at least", running.vips.by_id[vip_id], per_second[vip_id], why,
                    limits.overload_hold)
    for vip_id in verdict.left:
        switch_rates.forget(vip_id)
        if vip_id in running.vips.by_id:
            LOG.warning("%s: the controller picks for it again", running.vips.by_id[vip_id])
    reads = [(dpid, requests.request(dpid, "overload", now)) for dpid in balancers] if mine and limits.overload_above else []
    moved = [v for v in verdict.entered + verdict.left if v in running.vips.by_id]
    return pick_flows(running, balancers, moved) + reads
