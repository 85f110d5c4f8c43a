"""The running config and everything derived from it: VIP ids, schedulers and templates, the
backend-state model, each balancer's view and learned next hops, the select groups' slots.
A reload derives a new one from the old one and the new config, leaving the old one as it is."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from lbapp.config import Config
from lbapp.pipeline import cookies
from lbapp.pipeline.context import Context
from lbapp.shared import VipKey
from lbapp.state.backends import Backends
from lbapp.state.groups import Slots, derive_slots
from lbapp.state.health import Health, Target
from lbapp.state.nexthops import NextHops
from lbapp.state.vips import Vip, VipTable, assign_ids


@dataclass
class Site:
    """One balancer switch: its view of the config and its own learned next hops."""

    ctx: Context
    next_hops: NextHops


@dataclass
class Running:
    """The running config and what it implies. The Balancer holds one; a reload replaces it whole
    (lbapp.reload.plan_reload derives the next, leaving this one). In place it is changed only by
    the Balancer and the rooms it hands it to: lbapp.handlers.verdicts (backends' health,
    ``slots``), lbapp.handlers.picking (``overloaded``), lbapp.handlers.epochs (``epochs``),
    lbapp.handlers.arp (next hops)."""

    cfg: Config
    generation: int  # of the static flows it installs (1..cookies.MAX_GENERATION)
    ctx: Context  # the switch-independent view (edges, VIPs)
    sites: dict[int, Site]  # balancer dpid -> its site
    vips: VipTable
    backends: Backends
    slots: dict[int, tuple[VipKey, Slots]]  # balanced VIP id -> (its key, its slot table)
    reweigh: list[Vip]  # VIPs whose kept scheduler takes the new weights when this is taken
    # controller-picked VIPs the switch picks for during an overload: id -> when last seen over
    # the limit (lbapp.state.overload)
    overloaded: dict[int, float] = field(default_factory=dict)
    # `pin: conntrack` VIP id -> its current epoch, the ct_label value its connections seen in it
    # carry (lbapp.state.pinned)
    epochs: dict[int, int] = field(default_factory=dict)


def derive(cfg: Config, generation: int, previous: Running | None = None,
           health_of: Callable[[Target], Health] | None = None) -> Running:
    """What ``cfg`` implies. From ``previous`` (not changed): VIP ids, schedulers, feedback
    factors, learned next hops and slots carry over where the config still names them; each
    check's health comes from ``health_of`` (the health checks' own state)."""
    if not 1 <= generation <= cookies.MAX_GENERATION:
        raise ValueError(f"static flows use generations 1..{cookies.MAX_GENERATION} (0 marks session flows)")
    ids = assign_ids(cfg.vips, previous.vips.ids() if previous else None)
    feedback = Backends.feedback_for(cfg.feedback, previous.backends.feedback if previous else None)
    backends = Backends([(ids[VipKey.of(v)], v) for v in cfg.vips], feedback, health_of)
    vips, kept = (previous.vips if previous else VipTable()).derive(cfg.vips, ids, backends.weights)
    sites = {}
    ctx = Context(cfg, generation=generation, vip_ids=ids)
    for _, b in cfg.all_balancers():
        hops = NextHops.of([(g.name, g.ip, g.ports) for g in cfg.gateways], b.probe_interval)
        if previous is not None and b.dpid in previous.sites:
            hops.keep_learned(previous.sites[b.dpid].next_hops)
        sites[b.dpid] = Site(Context(cfg, b, generation, ids, ctx), hops)
    slots = derive_slots(vips, backends.weights, previous.slots if previous else None)
    # an overload goes on through a reload for the VIPs the controller still picks for
    overloaded = {vip.id: previous.overloaded[previous.vips.by_key[vip.key].id] for vip in vips
                  if previous and vip.controller_picks and vip.key in previous.vips.by_key
                  and previous.vips.by_key[vip.key].id in previous.overloaded}
    # an epoch goes on through a reload (connections seen in it stay counted); a new one starts at 1
    before = {vip.key: previous.epochs[vip.id] for vip in previous.vips
              if vip.id in previous.epochs} if previous else {}
    epochs = {vip.id: before.get(vip.key, 1) for vip in vips if vip.pins_in_conntrack}
    return Running(cfg, generation, ctx, sites, vips, backends, slots,
                   kept, overloaded, epochs)


def take(running: Running) -> None:
    """``running`` becomes the balancer's: kept schedulers take their new weights."""
    for vip in running.reweigh:
        vip.reweigh(running.backends.weights)
    running.reweigh = []
