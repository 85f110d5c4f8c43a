"""ARP that reaches the controller: a gateway's answer or announcement (the learning table's
next hop, lbapp.state.nexthops), and, with ``arp_proxy: controller``, a request for a backend's
address (answered with its fabricated MAC)."""
from __future__ import annotations

import logging
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp

from lbapp import mac as macs
from lbapp import packets
from lbapp.pipeline import next_hop
from lbapp.pipeline.actions import output
from lbapp.pipeline.fastpath import packet_out
from lbapp.state.nexthops import Gateway
from lbapp.state.running import Running, Site

LOG = logging.getLogger("lbapp")
Out = tuple[int, Any]


def gateway_arp(site: Site, dpid: int, in_port: int, data: bytes, now: float) -> tuple[list[Out], bool]:
    """An ARP from the balancer VLAN, maybe a gateway's: the next-hop flows it moves, and whether
    it claimed a gateway and was not believed. Raises PacketError for a frame that is no ARP."""
    info = packets.parse_arp(data)
    if macs.is_multicast(info.src_mac) or info.src_mac == 0:
        raise packets.PacketError(f"ARP from {info.src_ip} claims MAC {macs.format_mac(info.src_mac)}: "
                                  "not a unicast next hop")
    learned = site.next_hops.learn(info.src_ip, info.src_mac, in_port, now, info.eth_src)
    if learned is None:
        return [], False
    gw, where = learned.gateway, site.ctx.balancer.name
    if learned.refused:
        count = site.next_hops.warn_now(gw, now)
        if count:
            LOG.warning("%s: not believed: %d ARP(s) claiming next hop %s %s, the last from %s on port %d: %s",
                        where, count, gw.name, gw.ip, macs.format_mac(info.src_mac), in_port, learned.refused)
        return [], True
    if not learned.changed:
        return [], False
    if learned.old_mac is None:
        LOG.info("%s: next hop %s %s is at %s port %d", where, gw.name, gw.ip, macs.format_mac(gw.mac), in_port)
    else:
        LOG.warning("%s: next hop %s %s moved from %s port %s to %s port %d", where, gw.name, gw.ip,
                    macs.format_mac(learned.old_mac), learned.old_port, macs.format_mac(gw.mac), in_port)
    return [(dpid, m) for m in next_hop_flows(site, gw)], False


def next_hop_flows(site: Site, gw: Gateway, clear: bool = True) -> list[Any]:
    """The next-hop flows of every route through ``gw``, at its learned MAC and port."""
    return [m for route_id, route in site.ctx.routes() if route.via == gw.name
            for m in next_hop.route_flows(site.ctx, route_id, gw.mac, gw.port, clear)]


def answer_for_backend(running: Running, dpid: int, in_port: int, data: bytes) -> list[Out]:
    """Controller-mode ARP proxy: answer a request for a backend IP with its fabricated MAC."""
    info = packets.parse_arp(data)
    if info.op != 1:
        return []
    try:
        if running.cfg.route_for(info.dst_ip) is None:
            raise macs.MacError("no route")
        fab = running.ctx.scheme.encode(info.dst_ip)
    except macs.MacError:
        LOG.debug("ARP for %s: not a backend address, not answered", info.dst_ip)
        return []
    return [(dpid, packet_out(packets.arp_reply(info, fab), ofp.OFPP_CONTROLLER, [output(in_port)]))]


def gateway_probe(site: Site, dpid: int, gateway_ip) -> Out:
    """An ARP request for a gateway, from the balancer's own address and MAC, out of every port
    (the balancer switch carries only its VLAN)."""
    data = packets.arp_request(site.ctx.balancer_mac, site.ctx.balancer_ip, gateway_ip)
    return dpid, packet_out(data, ofp.OFPP_CONTROLLER, [output(ofp.OFPP_FLOOD)])
