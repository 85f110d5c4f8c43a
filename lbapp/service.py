"""The balancer's logic: OpenFlow events in, OpenFlow messages out. No os-ken runtime, no clock.

Every entry point takes ``now`` and returns a list of ``(dpid, message)`` for the sender; the
messages are os-ken parser objects without a datapath, which the sender attaches.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from lbapp import mac as macs
from lbapp import packets
from lbapp.config import Config
from lbapp.pipeline import arp_proxy, classify, cookies, next_hop, session, snat, translate
from lbapp.pipeline.actions import L4, output
from lbapp.pipeline.context import Context
from lbapp.pipeline.tables import BALANCER_TABLES, EDGE_TABLES, TABLES
from lbapp.schedulers import registry
from lbapp.schedulers.base import BackendWeight, ConnKey
from lbapp.state.nexthops import Gateway, NextHops
from lbapp.state.sessions import Sessions

LOG = logging.getLogger("lbapp")
Out = tuple[int, Any]


@dataclass
class Site:
    """One balancer switch: its view of the config and its own learned next hops."""

    ctx: Context
    next_hops: NextHops


class Balancer:
    def __init__(self, cfg: Config, generation: int = 0) -> None:
        self.cfg = cfg
        self.ctx = Context(cfg, generation=generation)  # the switch-independent view (edges, VIPs)
        self.sites = {b.dpid: Site(Context(cfg, b, generation),
                                   NextHops([(g.name, g.ip) for g in cfg.gateways], b.probe_interval))
                      for _, b in cfg.all_balancers()}
        self.sessions = Sessions()
        self.schedulers = {vip_id: registry.create(vip.scheduler, [BackendWeight(b.ip, b.weight)
                                                                   for b in vip.backends])
                           for vip_id, vip in self.ctx.vips()}
        self.vip_by_key = {(vip.ip, L4[vip.protocol][0], vip.port): (vip_id, vip)
                           for vip_id, vip in self.ctx.balanced_vips()}
        self.connected: set[int] = set()
        self.dropped_no_backend = 0
        self.bad_packets = 0

    # --- switch lifecycle ---

    def switch_connected(self, dpid: int, now: float) -> list[Out]:
        """Sweep our stale static flows, install this switch's pipeline, probe gateways."""
        self.connected.add(dpid)
        roles = []
        flows: list[Any] = []
        names: set[str] = set()
        site = self.sites.get(dpid)
        if site is not None:
            roles.append(f"balancer {site.ctx.balancer.name}")
            names.update(BALANCER_TABLES)
            site.next_hops.forget_port()
            site.next_hops.probe_soon()
            ctx = site.ctx
            flows += (classify.balancer_flows(ctx) + arp_proxy.balancer_flows(ctx) + session.balancer_flows(ctx)
                      + translate.balancer_flows(ctx) + next_hop.balancer_flows(ctx))
        if self.ctx.edges_of(dpid):
            roles.append("edge")
            names.update(EDGE_TABLES)
            if site is None:
                flows += classify.edge_flows(self.ctx, dpid)
            else:
                flows += [f for f in classify.edge_flows(self.ctx, dpid) if f.priority != 0]
            flows += snat.edge_flows(self.ctx, dpid)
        if not roles:
            LOG.warning("switch %016x is in no balancer or edge of the config; leaving it alone", dpid)
            return []
        sweep = [TABLES[n].delete({}, cookie=cookies.make(TABLES[n].stage), cookie_mask=cookies.stage_mask())
                 for n in sorted(names) if not TABLES[n].session_owned]
        LOG.info("switch %016x connected as %s: installing %d flows", dpid, "+".join(roles), len(flows))
        return [(dpid, m) for m in sweep + flows] + self.tick(now)

    def switch_disconnected(self, dpid: int) -> None:
        self.connected.discard(dpid)
        LOG.warning("switch %016x disconnected", dpid)

    # --- periodic work ---

    def tick(self, now: float) -> list[Out]:
        """ARP probes that are due, sent from each balancer's own address and MAC."""
        out = []
        for dpid, site in self.sites.items():
            if dpid not in self.connected:
                continue
            for gw in site.next_hops.due_probes(now):
                data = packets.arp_request(site.ctx.balancer_mac, site.ctx.balancer_ip, gw.ip)
                out.append((dpid, packet_out(data, ofp.OFPP_CONTROLLER, [output(ofp.OFPP_FLOOD)])))
        return out

    # --- packet-in ---

    def packet_in(self, dpid: int, in_port: int, cookie: int, data: bytes, now: float) -> list[Out]:
        """Dispatch on the cookie of the flow that punted the packet. Never raises on a packet."""
        stage = cookies.stage_of(cookie) if cookies.is_ours(cookie) else None
        site = self.sites.get(dpid)
        if site is None:
            LOG.debug("switch %016x: packet-in from a switch that is no balancer", dpid)
            return []
        try:
            if stage == cookies.STAGE_SESSION:
                return self._new_connection(dpid, in_port, data, now)
            if stage == cookies.STAGE_CLASSIFY:
                return self._gateway_arp(site, dpid, in_port, data, now)
            if stage == cookies.STAGE_ARP_PROXY:
                return self._answer_arp(dpid, in_port, data)
        except packets.PacketError as exc:
            self.bad_packets += 1
            LOG.warning("switch %016x port %d: ignored packet-in: %s", dpid, in_port, exc)
            return []
        LOG.debug("switch %016x: packet-in from a flow that is not ours (cookie %#x)", dpid, cookie)
        return []

    def _new_connection(self, dpid: int, in_port: int, data: bytes, now: float) -> list[Out]:
        key = packets.parse_connection(data)
        found = self.vip_by_key.get((key.dst_ip, key.protocol, key.dst_port))
        if found is None:
            raise packets.PacketError(f"{key.src_ip}:{key.src_port} -> {key.dst_ip}:{key.dst_port} is no VIP")
        vip_id, vip = found
        sess = self.sessions.get(key)
        if sess is None:  # else: a retransmission raced the session flow; re-send the same rule
            backend = self.schedulers[vip_id].pick(key, self.sessions.counts(vip_id))
            if backend is None:
                self.dropped_no_backend += 1
                LOG.warning("VIP %s: no backend can take %s:%d (all drained)", vip.name, key.src_ip, key.src_port)
                return []
            sess = self.sessions.add(key, vip_id, backend, now)
            LOG.info("session %d: %s:%d -> %s %s:%d -> %s", sess.session_id, key.src_ip, key.src_port,
                     vip.name, vip.ip, vip.port, backend)
        fab = self.ctx.scheme.encode(sess.backend)
        return [(dpid, session.install(key, vip_id, sess.session_id, fab, vip.idle_timeout)),
                # Re-enter the pipeline at table 0: the new session flow now carries it on.
                (dpid, packet_out(data, in_port, [output(ofp.OFPP_TABLE)]))]

    def _gateway_arp(self, site: Site, dpid: int, in_port: int, data: bytes, now: float) -> list[Out]:
        info = packets.parse_arp(data)
        gw = site.next_hops.learn(info.src_ip, info.src_mac, in_port, now)
        if gw is None:
            return []
        LOG.info("%s: next hop %s %s is at %s port %d", site.ctx.balancer.name, gw.name, gw.ip,
                 macs.format_mac(gw.mac), in_port)
        return [(dpid, m) for m in self._next_hop_flows(site, gw)]

    @staticmethod
    def _next_hop_flows(site: Site, gw: Gateway) -> list[Any]:
        return [m for route_id, route in site.ctx.routes() if route.via == gw.name
                for m in next_hop.route_flows(site.ctx, route_id, gw.mac, gw.port)]

    def _answer_arp(self, dpid: int, in_port: int, data: bytes) -> list[Out]:
        """Controller-mode ARP proxy: answer a request for a backend IP with its fabricated MAC."""
        info = packets.parse_arp(data)
        if info.op != 1:
            return []
        try:
            if self.cfg.route_for(info.dst_ip) is None:
                raise macs.MacError("no route")
            fab = self.ctx.scheme.encode(info.dst_ip)
        except macs.MacError:
            LOG.debug("ARP for %s: not a backend address, not answered", info.dst_ip)
            return []
        return [(dpid, packet_out(packets.arp_reply(info, fab), ofp.OFPP_CONTROLLER, [output(in_port)]))]

    # --- flow-removed ---

    def flow_removed(self, dpid: int, cookie: int, reason: int, now: float) -> list[Out]:
        decoded = cookies.decode(cookie)
        if decoded is None or decoded.stage != cookies.STAGE_SESSION:
            return []
        sess = self.sessions.remove(decoded.obj)
        if sess is not None:
            LOG.info("session %d ended (%s) after %.1fs: %s:%d -> %s; %d live", sess.session_id,
                     _REASONS.get(reason, reason), now - sess.created, sess.key.src_ip, sess.key.src_port, sess.backend,
                     len(self.sessions))
        return []


_REASONS = {ofp.OFPRR_IDLE_TIMEOUT: "idle", ofp.OFPRR_HARD_TIMEOUT: "hard timeout", ofp.OFPRR_DELETE: "deleted"}


def packet_out(data: bytes, in_port: int, actions: list) -> parser.OFPPacketOut:
    return parser.OFPPacketOut(datapath=None, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port, actions=actions,
                               data=data)

