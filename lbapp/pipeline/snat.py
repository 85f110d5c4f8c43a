"""Stage snat (table 50, edge switches): a backend's reply leaves with src = its VIP; a backend
that called its own VIP and was picked for itself (hairpin) gets the call from the VIP, through
conntrack NAT at its edge (OVN's hairpin source address is the VIP too)."""
from __future__ import annotations

from ipaddress import IPv4Address

from lbapp.pipeline import cookies
from lbapp.pipeline.actions import ETH_TYPE_IP, L4, conntrack, normal, set_field, source_nat, undo_nat
from lbapp.pipeline.context import Context, SwitchView
from lbapp.pipeline.tables import CT_TRACKED, CT_ZONE_HAIRPIN, TABLES
from lbapp.shared import VipBackend

TABLE = TABLES["snat"]


def _reply_match(protocol: str, port: int, backend: IPv4Address) -> dict:
    proto, src_field, _ = L4[protocol]
    return {"eth_type": ETH_TYPE_IP, "ip_proto": proto, "ipv4_src": str(backend), src_field: port}


def _reply(vip_ip: IPv4Address, protocol: str, port: int, backend: IPv4Address, cookie: int):
    return TABLE.flow("reply", _reply_match(protocol, port, backend), cookie=cookie,
                      actions=[set_field(ipv4_src=str(vip_ip)), normal()])


def _hairpin_matches(vip_ip: IPv4Address, protocol: str, port: int, backend: IPv4Address) -> tuple[dict, dict]:
    """(the call, its answer) of a backend picked for its own call to ``vip_ip``; untracked only:
    after conntrack they come back to this table and go on as any packet."""
    proto, src_field, dst_field = L4[protocol]
    untracked = {"eth_type": ETH_TYPE_IP, "ct_state": (0, CT_TRACKED), "ip_proto": proto}
    return ({**untracked, "ipv4_src": str(backend), "ipv4_dst": str(backend), dst_field: port},
            {**untracked, "ipv4_src": str(backend), src_field: port, "ipv4_dst": str(vip_ip)})


def _hairpin(vip_ip: IPv4Address, protocol: str, port: int, backend: IPv4Address, cookie: int) -> list:
    call, answer = _hairpin_matches(vip_ip, protocol, port, backend)
    return [TABLE.flow("hairpin", call, cookie=cookie, actions=[
                conntrack(CT_ZONE_HAIRPIN, commit=True, nat=source_nat(str(vip_ip)), table=TABLE.table_id)]),
            TABLE.flow("hairpin", answer, cookie=cookie, actions=[
                conntrack(CT_ZONE_HAIRPIN, nat=undo_nat(), table=TABLE.table_id)])]


def _pair_flows(vip_ip: IPv4Address, protocol: str, port: int, backend: IPv4Address, cookie: int) -> list:
    return [_reply(vip_ip, protocol, port, backend, cookie), *_hairpin(vip_ip, protocol, port, backend, cookie)]


def lingering_flows(ctx: Context, pairs: list[VipBackend]) -> list:
    """Source NAT (and hairpin) for (VIP, backend) pairs no longer in the config."""
    return [flow for p in pairs
            for flow in _pair_flows(p.vip.ip, p.vip.protocol_name, p.vip.port, p.backend,
                                    cookies.make_lingering(TABLE.stage, ctx.generation, int(p.backend)))]


def remove_lingering(pair: VipBackend) -> list:
    """The removal of :func:`lingering_flows`' flows for ``pair``, any generation."""
    vip, protocol, port = pair.vip.ip, pair.vip.protocol_name, pair.vip.port
    return [TABLE.delete(match, cookie=cookies.make_lingering(TABLE.stage, 0, int(pair.backend)),
                         cookie_mask=cookies.object_mask())
            for match in (_reply_match(protocol, port, pair.backend), *_hairpin_matches(vip, protocol, port, pair.backend))]


def edge_flows(view: SwitchView) -> list:
    ctx = view.ctx
    flows = []
    on_edge = {ip for e in ctx.edges_of(view.dpid) for ip in e.backends}
    for vip_id, vip in ctx.vips():
        proto, src_field, _ = L4[vip.protocol]
        for b in vip.backends:
            if b.ip not in on_edge:
                continue
            flows += _pair_flows(vip.ip, vip.protocol, vip.port, b.ip,
                                 cookies.make(TABLE.stage, generation=ctx.generation, vip=vip_id,
                                              obj=ctx.backend_ids[b.ip]))
    return flows
