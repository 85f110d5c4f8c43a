"""Stage translate (table 30): fabricated MAC -> backend IP in ipv4_dst.

For computed MACs the switch recovers the IP itself with the layout's move actions (OVS turns
them into a plain datapath set(ipv4(dst=...)) with checksums fixed); for the MAC table, one flow
per backend sets the IP.
"""
from __future__ import annotations

from lbapp.pipeline import cookies
from lbapp.pipeline.actions import ETH_TYPE_IP, moves, set_field
from lbapp.pipeline.context import SwitchView
from lbapp.pipeline.tables import TABLES

TABLE = TABLES["translate"]


def balancer_flows(view: SwitchView) -> list:
    ctx = view.ctx
    flows = []
    for r in ctx.fabricated_ranges():
        if r.backend is None:  # computed: the IP bits of eth_dst move into ipv4_dst
            actions = moves(ctx.scheme.layout.ip_segments, "eth_dst", "ipv4_dst", into_mac=False)
        else:
            actions = [set_field(ipv4_dst=str(r.backend))]
        flows.append(TABLE.flow("fabricated", {"eth_type": ETH_TYPE_IP, "eth_dst": r.eth_dst}, actions=actions,
                                goto="next_hop", cookie=cookies.make(TABLE.stage, generation=ctx.generation, obj=r.obj)))
    return flows
