"""Stage arp_proxy (table 10): answer ARP for the balancer, its VIPs and the backends.

The in-switch responders follow neutron's ARP responder: turn the request into a reply in place
(swap addresses, set arp_op=2) and send it back out IN_PORT. For computed MACs one flow per
backend route builds the fabricated MAC from arp_tpa with the layout's move actions.
"""
from __future__ import annotations

from lbapp import mac as macs
from lbapp.pipeline import cookies
from lbapp.pipeline.actions import (ARP_REPLY, ARP_REQUEST, ETH_TYPE_ARP, load, move, moves, output,
                                    set_field, to_controller)
from lbapp.pipeline.context import Context, SwitchView
from lbapp.pipeline.tables import REG_ARP_SWAP, TABLES
from os_ken.ofproto import ofproto_v1_3 as ofp

TABLE = TABLES["arp_proxy"]


def _cookie(ctx: Context, vip: int = 0, obj: int = 0) -> int:
    return cookies.make(TABLE.stage, generation=ctx.generation, vip=vip, obj=obj)


def _reply_tail() -> list:
    """After eth_src holds the answer MAC: make the frame a reply and send it back."""
    return [
        set_field(arp_op=ARP_REPLY),
        move("arp_sha", "arp_tha", 48),
        move("eth_src", "arp_sha", 48),
        move("arp_tpa", REG_ARP_SWAP, 32),
        move("arp_spa", "arp_tpa", 32),
        move(REG_ARP_SWAP, "arp_spa", 32),
        output(ofp.OFPP_IN_PORT),
    ]


def constant_reply(mac: int) -> list:
    return [move("eth_src", "eth_dst", 48), set_field(eth_src=macs.format_mac(mac))] + _reply_tail()


def computed_reply(scheme: macs.ComputedScheme) -> list:
    actions = [move("eth_src", "eth_dst", 48)]
    actions += [load("eth_src", (scheme.tag >> s.src_ofs) & ((1 << s.n_bits) - 1), s.mac_ofs, s.n_bits)
                for s in scheme.layout.tag_segments]
    actions += moves(scheme.layout.ip_segments, "arp_tpa", "eth_src", into_mac=True)
    return actions + _reply_tail()


def _request(tpa: str | tuple[str, str]) -> dict:
    return {"eth_type": ETH_TYPE_ARP, "arp_op": ARP_REQUEST, "arp_tpa": tpa}


def balancer_flows(view: SwitchView) -> list:
    ctx = view.ctx
    flows = [TABLE.flow("probe_reply", {"eth_type": ETH_TYPE_ARP, "arp_op": ARP_REPLY,
                                        "arp_tpa": str(ctx.balancer_ip)}, cookie=_cookie(ctx))]
    own = [(0, ctx.balancer_ip)] + [(vip_id, v.ip) for vip_id, v in ctx.balanced_vips()]
    seen = set()
    for vip_id, ip in own:
        if ip in seen:
            continue
        seen.add(ip)
        flows.append(TABLE.flow("own_address", _request(str(ip)), cookie=_cookie(ctx, vip=vip_id),
                                actions=constant_reply(ctx.balancer_mac)))
    flows.extend(backend_flows(ctx))
    return flows


def backend_flows(ctx: Context) -> list:
    in_switch = ctx.balancer.arp_proxy == "switch"
    flows = []
    for r in ctx.fabricated_ranges():
        if not in_switch:
            actions = [to_controller()]
        elif r.backend is None:  # computed: the MAC is built from arp_tpa
            actions = computed_reply(ctx.scheme)
        else:
            actions = constant_reply(ctx.scheme.encode(r.backend))
        flows.append(TABLE.flow("backend", _request(r.arp_tpa), cookie=_cookie(ctx, obj=r.obj), actions=actions))
    return flows
