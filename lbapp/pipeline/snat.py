"""Stage snat (table 50, edge switches): a backend's reply leaves with src = its VIP."""
from __future__ import annotations

from lbapp.pipeline import cookies
from lbapp.pipeline.actions import ETH_TYPE_IP, L4, normal, set_field
from lbapp.pipeline.context import Context
from lbapp.pipeline.tables import TABLES

TABLE = TABLES["snat"]


def edge_flows(ctx: Context, dpid: int) -> list:
    flows = [TABLE.miss_flow(ctx.generation)]
    on_edge = {ip for e in ctx.edges_of(dpid) for ip in e.backends}
    for vip_id, vip in ctx.vips():
        proto, src_field, _ = L4[vip.protocol]
        for b in vip.backends:
            if b.ip not in on_edge:
                continue
            flows.append(TABLE.flow(
                "reply", {"eth_type": ETH_TYPE_IP, "ip_proto": proto, "ipv4_src": str(b.ip), src_field: vip.port},
                cookie=cookies.make(TABLE.stage, generation=ctx.generation, vip=vip_id,
                                    obj=ctx.backend_ids[b.ip]),
                actions=[set_field(ipv4_src=str(vip.ip)), normal()]))
    return flows
