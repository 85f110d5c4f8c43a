"""Stage snat (table 50, edge switches): a backend's reply leaves with src = its VIP."""
from __future__ import annotations

from ipaddress import IPv4Address

from lbapp.pipeline import cookies
from lbapp.pipeline.actions import ETH_TYPE_IP, L4, normal, set_field
from lbapp.pipeline.context import Context, SwitchView
from lbapp.pipeline.tables import TABLES
from lbapp.shared import VipBackend

TABLE = TABLES["snat"]


def _reply_match(protocol: str, port: int, backend: IPv4Address) -> dict:
    proto, src_field, _ = L4[protocol]
    return {"eth_type": ETH_TYPE_IP, "ip_proto": proto, "ipv4_src": str(backend), src_field: port}


def _reply(vip_ip: IPv4Address, protocol: str, port: int, backend: IPv4Address, cookie: int):
    return TABLE.flow("reply", _reply_match(protocol, port, backend), cookie=cookie,
                      actions=[set_field(ipv4_src=str(vip_ip)), normal()])


def lingering_flows(ctx: Context, pairs: list[VipBackend]) -> list:
    """Source NAT for (VIP, backend) pairs no longer in the config."""
    return [_reply(p.vip.ip, p.vip.protocol_name, p.vip.port, p.backend,
                   cookies.make_lingering(TABLE.stage, ctx.generation, int(p.backend)))
            for p in pairs]


def remove_lingering(pair: VipBackend):
    """The removal of :func:`lingering_flows`' flow for ``pair``, any generation."""
    return TABLE.delete(_reply_match(pair.vip.protocol_name, pair.vip.port, pair.backend),
                        cookie=cookies.make_lingering(TABLE.stage, 0, int(pair.backend)),
                        cookie_mask=cookies.object_mask())


def edge_flows(view: SwitchView) -> list:
    ctx = view.ctx
    flows = []
    on_edge = {ip for e in ctx.edges_of(view.dpid) for ip in e.backends}
    for vip_id, vip in ctx.vips():
        proto, src_field, _ = L4[vip.protocol]
        for b in vip.backends:
            if b.ip not in on_edge:
                continue
            flows.append(_reply(vip.ip, vip.protocol, vip.port, b.ip,
                                cookies.make(TABLE.stage, generation=ctx.generation, vip=vip_id,
                                             obj=ctx.backend_ids[b.ip])))
    return flows
