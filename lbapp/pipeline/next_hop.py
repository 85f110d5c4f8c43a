"""Stage next_hop (table 40): the learning table's output. Frame to the gateway's learned MAC.

Until a gateway is learned its routes drop (and the drop flow's counters say how much), so a
packet is never sent to a wrong MAC. OpenFlow never outputs to the ingress port unless told
IN_PORT, and VIP traffic usually arrives from the very gateway it leaves through, hence the
in_port variant of each route.
"""
from __future__ import annotations

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from lbapp import mac as macs
from lbapp.pipeline import cookies
from lbapp.pipeline.actions import ETH_TYPE_IP, output, set_field
from lbapp.pipeline.context import Context, SwitchView
from lbapp.pipeline.tables import TABLES, route_priority_offset

TABLE = TABLES["next_hop"]


def route_cookie(ctx: Context, route_id: int) -> int:
    return cookies.make(TABLE.stage, generation=ctx.generation, obj=route_id)


def _match(route, in_port: int | None = None) -> dict:
    match = {"eth_type": ETH_TYPE_IP, "ipv4_dst": (str(route.dst.network_address), str(route.dst.netmask))}
    if in_port is not None:
        match["in_port"] = in_port
    return match


def route_flows(ctx: Context, route_id: int, gateway_mac: int | None, gateway_port: int | None,
                clear: bool = True) -> list:
    """One route's flows: drop while its gateway is unknown, else forward. With ``clear`` its
    previous flows go first (the gateway's port may have changed, leaving an in_port variant)."""
    route = ctx.cfg.routes[route_id - 1]
    cookie = route_cookie(ctx, route_id)
    msgs = [TABLE.delete({}, cookie=cookie, cookie_mask=cookies.object_mask())] if clear else []
    offset = route_priority_offset(route.dst.prefixlen, on_gateway_port=False)
    if gateway_mac is None or gateway_port is None:
        msgs.append(TABLE.flow("route", _match(route), cookie=cookie, priority_offset=offset))
        return msgs
    rewrite = [set_field(eth_src=macs.format_mac(ctx.balancer_mac)),
               set_field(eth_dst=macs.format_mac(gateway_mac)),
               parser.OFPActionDecNwTtl()]
    msgs.append(TABLE.flow("route", _match(route), cookie=cookie, priority_offset=offset,
                           actions=rewrite + [output(gateway_port)]))
    msgs.append(TABLE.flow("route", _match(route, gateway_port), cookie=cookie,
                           priority_offset=route_priority_offset(route.dst.prefixlen, on_gateway_port=True),
                           actions=rewrite + [output(ofp.OFPP_IN_PORT)]))
    return msgs


def balancer_flows(view: SwitchView) -> list:
    """Each route toward its gateway as learned so far (at connect: none yet, so every route
    drops until its gateway answers a probe)."""
    flows = []
    for route_id, route in view.ctx.routes():
        mac, port = view.gateways.get(route.via, (None, None))
        flows.extend(route_flows(view.ctx, route_id, mac, port, clear=False))
    return flows
