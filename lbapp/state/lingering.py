"""Backends that left the config while connections to them live ("lingering").

Two kinds of leftovers, owned here together because either keeps the other's edge flows alive:
- a removed (VIP, backend) with live sessions keeps the source NAT on its edge switch (and the
  edge's classify flow that sends its replies there) until its last session ends;
- a backend removed from a ``selection: switch`` VIP keeps its pin flow on every balancer, with
  the VIP's idle timeout: its pinned connections finish where they are; when the flow idles out
  on every balancer (flow-removed), the pin is over.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterable

from lbapp.config import Config
from lbapp.pipeline import classify, session, snat
from lbapp.pipeline.context import Context
from lbapp.shared import IPv4, VipBackend, VipKey

LOG = logging.getLogger("lbapp")


class Lingering:
    """Owns the lingering source NATs (``nat``: pair -> edge) and pins (``pins``: pair ->
    balancers). Changed only by the Balancer (``pin_idle``, ``ended``); a reload leaves it as it is
    and builds the next one (``after_reload``, from lbapp.reload.plan_reload), which the Balancer
    takes."""

    def __init__(self) -> None:
        self.nat: dict[VipBackend, int] = {}  # lingering (VIP, backend) -> its edge switch
        self.pins: dict[VipBackend, set[int]] = {}  # lingering pin -> balancers whose flow still lives

    def after_reload(self, old: Config, new: Config, live: Iterable[VipBackend], balancers: set[int]
                     ) -> "Lingering":
        """What lingers once ``new`` replaces ``old`` (this object is left as it is): pins of
        backends that left a VIP (on ``balancers``, the connected ones), and
        the source NAT of every live (VIP, backend) the new config no longer serves."""
        after = Lingering()
        # each VIP's backends by key: a pair is looked up, not found in a set of every pair the
        # config serves (100,000 at 10,000 VIPs, built at every reload)
        new_by_key = {VipKey.of(v): v for v in new.vips}

        def served(pair: VipBackend) -> bool:
            vip = new_by_key.get(pair.vip)
            return vip is not None and any(b.ip == pair.backend for b in vip.backends)
        after.pins = {pair: set(dpids) for pair, dpids in self.pins.items() if not served(pair)}
        # a controller-picked VIP's connections are pinned in conntrack too, during an overload
        old_by_key = {VipKey.of(v): v for v in old.vips}
        for key, vip in new_by_key.items():
            was = old_by_key.get(key)
            if vip.external_director or was is None or was.external_director:
                continue
            now, then = [b.ip for b in vip.backends], [b.ip for b in was.backends]
            if now == then:
                continue
            for backend in sorted(set(then) - set(now)):
                after.pins[VipBackend(key, backend)] = set(balancers)
                LOG.info("backend %s left %s: its pinned connections stay until idle", backend, key)

        old_edge = {ip: e.dpid for e in old.edges for ip in e.backends}
        unserved = [pair for pair in list(live) + list(after.pins) if not served(pair)]
        # source NAT matches (backend, protocol, port): a pair the new config serves under
        # another VIP address must not be shadowed by the old one
        nat_keys = {(b.ip, key.protocol, key.port) for key, v in new_by_key.items() for b in v.backends} \
            if unserved else set()
        still = {}
        for pair in unserved:
            if (pair.backend, pair.vip.protocol, pair.vip.port) in nat_keys:
                continue
            edge = self.nat.get(pair, old_edge.get(pair.backend))
            if edge is not None:
                still[pair] = edge
        for pair in set(still) - set(self.nat):
            LOG.info("backend %s left %s with live sessions: its source NAT stays until they end", pair.backend, pair.vip)
        after.nat = still
        return after

    def on_edge(self, dpid: int) -> list[VipBackend]:
        return [pair for pair, edge in self.nat.items() if edge == dpid]

    def edge_flows(self, ctx: Context, dpid: int) -> list[Any]:
        """An edge switch's lingering flows: source NAT per pair, and the classify flow of each
        backend the edge no longer serves otherwise."""
        pairs = self.on_edge(dpid)
        if not pairs:
            return []
        on_edge = {ip for e in ctx.edges_of(dpid) for ip in e.backends}
        return (classify.lingering_flows(ctx, {p.backend for p in pairs} - on_edge)
                + snat.lingering_flows(ctx, pairs))

    def pin_flows(self, ctx: Context, dpid: int) -> list[Any]:
        """A balancer's lingering pin flows (it may have lost them: a reconnect re-adds them)."""
        vips = {VipKey.of(v): v for v in ctx.cfg.vips}
        return [session.lingering_pin(ctx, vips[pair.vip], pair.backend)
                for pair, dpids in sorted(self.pins.items()) if dpid in dpids and pair.vip in vips]

    def pin_idle(self, dpid: int, pair: VipBackend, still_live: Callable[[VipBackend], bool]) -> list[Any]:
        """A lingering pin flow idled out on ``dpid``; when it has on every balancer, the pin
        is over. Returns the (dpid, message)s that remove what ends with it."""
        dpids = self.pins.get(pair)
        if dpids is None:
            return []
        dpids.discard(dpid)
        if dpids:
            return []
        del self.pins[pair]
        LOG.info("backend %s: its last pinned connection to %s went idle", pair.backend, pair.vip)
        return self.ended(pair, still_live)

    def ended(self, pair: VipBackend, still_live: Callable[[VipBackend], bool]) -> list[tuple[int, Any]]:
        """A session or pin of ``pair`` ended: when nothing of it lives on, its source NAT goes."""
        dpid = self.nat.get(pair)
        if dpid is None or pair in self.pins or still_live(pair):
            return []
        del self.nat[pair]
        LOG.info("backend %s: last session on %s ended; its source NAT goes", pair.backend, pair.vip)
        out = [(dpid, removal) for removal in snat.remove_lingering(pair)]
        if not any(p.backend == pair.backend and d == dpid for p, d in self.nat.items()):
            out.append((dpid, classify.remove_lingering(pair.backend)))
        return out

    def backends(self) -> set[IPv4]:
        return {pair.backend for pair in self.nat} | {pair.backend for pair in self.pins}
