"""Stage translate (table 30): fabricated MAC -> backend IP in ipv4_dst.

For computed MACs the switch recovers the IP itself with the layout's move actions (OVS turns
them into a plain datapath set(ipv4(dst=...)) with checksums fixed); for the MAC table, one flow
per backend sets the IP.
"""
from __future__ import annotations

from lbapp import mac as macs
from lbapp.pipeline import cookies
from lbapp.pipeline.actions import ETH_TYPE_IP, moves, set_field
from lbapp.pipeline.context import Context
from lbapp.pipeline.tables import TABLES

TABLE = TABLES["translate"]


def balancer_flows(ctx: Context) -> list:
    flows = [TABLE.miss_flow(ctx.generation)]
    scheme = ctx.scheme
    if isinstance(scheme, macs.ComputedScheme):
        actions = moves(scheme.layout.ip_segments, "eth_dst", "ipv4_dst", into_mac=False)
        for route_id, route in ctx.routes():
            match = {"eth_type": ETH_TYPE_IP,
                     "eth_dst": tuple(map(macs.format_mac, scheme.network_match(route.dst)))}
            flows.append(TABLE.flow("fabricated", match, actions=actions, goto="next_hop",
                                    cookie=cookies.make(TABLE.stage, generation=ctx.generation, obj=route_id)))
    else:
        for ip, backend_id in ctx.backend_ids.items():
            match = {"eth_type": ETH_TYPE_IP, "eth_dst": macs.format_mac(scheme.encode(ip))}
            flows.append(TABLE.flow("fabricated", match, actions=[set_field(ipv4_dst=str(ip))], goto="next_hop",
                                    cookie=cookies.make(TABLE.stage, generation=ctx.generation, obj=backend_id)))
    return flows
