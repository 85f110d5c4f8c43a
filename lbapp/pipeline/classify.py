"""Stage classify (table 0): sort arriving frames into the pipeline."""
from __future__ import annotations

from ipaddress import IPv4Address

from lbapp import mac as macs
from lbapp.pipeline import cookies
from lbapp.pipeline.actions import ARP_REQUEST, ETH_TYPE_ARP, ETH_TYPE_IP, L4, to_controller
from lbapp.pipeline.context import Context, SwitchView
from lbapp.pipeline.tables import TABLES

TABLE = TABLES["classify"]


def _cookie(ctx: Context, vip: int = 0, obj: int = 0) -> int:
    return cookies.make(TABLE.stage, generation=ctx.generation, vip=vip, obj=obj)


def balancer_flows(view: SwitchView) -> list:
    ctx = view.ctx
    flows = []
    for i, gw in enumerate(ctx.cfg.gateways):
        # The learning table's input: every ARP a gateway sends (probe replies, GARP, requests).
        flows.append(TABLE.flow("gateway_arp", {"eth_type": ETH_TYPE_ARP, "arp_spa": str(gw.ip)},
                                cookie=_cookie(ctx, obj=i + 1), actions=[to_controller()], goto="arp_proxy"))
    if ctx.checks_health:
        # health probes' answers come to the balancer's own address
        flows.append(TABLE.flow("probe_answer", {"eth_type": ETH_TYPE_IP, "ipv4_dst": str(ctx.balancer_ip)},
                                cookie=_cookie(ctx), goto="probe"))
    flows.append(TABLE.flow("arp_request", {"eth_type": ETH_TYPE_ARP, "arp_op": ARP_REQUEST},
                            cookie=_cookie(ctx), goto="arp_proxy"))
    for vip_id, vip in ctx.balanced_vips():
        proto, _, dst_field = L4[vip.protocol]
        # Only frames routed to the balancer: the same VIP may pass by on its way elsewhere.
        flows.append(TABLE.flow("vip", {"eth_type": ETH_TYPE_IP, "eth_dst": macs.format_mac(ctx.balancer_mac),
                                        "ip_proto": proto, "ipv4_dst": str(vip.ip), dst_field: vip.port},
                                cookie=_cookie(ctx, vip=vip_id), goto="session"))
    flows.extend(fabricated_flows(ctx))
    return flows


def fabricated_flows(ctx: Context) -> list:
    """Frames already addressed to a fabricated MAC (an external director's) go to translate."""
    return [TABLE.flow("fabricated", {"eth_type": ETH_TYPE_IP, "eth_dst": r.eth_dst}, cookie=_cookie(ctx, obj=r.obj),
                       goto="translate")
            for r in ctx.fabricated_ranges()]


def lingering_flows(ctx: Context, backends: set[IPv4Address]) -> list:
    """Replies of backends removed from the config whose sessions still live go to snat."""
    return [TABLE.flow("backend_reply", {"eth_type": ETH_TYPE_IP, "ipv4_src": str(ip)},
                       cookie=cookies.make_lingering(TABLE.stage, ctx.generation, int(ip)), goto="snat")
            for ip in sorted(backends)]


def remove_lingering(backend: IPv4Address):
    """The removal of :func:`lingering_flows`' flow for ``backend``, any generation."""
    return TABLE.delete({"eth_type": ETH_TYPE_IP, "ipv4_src": str(backend)},
                        cookie=cookies.make_lingering(TABLE.stage, 0, int(backend)), cookie_mask=cookies.object_mask())


def edge_flows(view: SwitchView) -> list:
    ctx = view.ctx
    flows = []
    for edge in ctx.edges_of(view.dpid):
        for ip in edge.backends:
            flows.append(TABLE.flow("backend_reply", {"eth_type": ETH_TYPE_IP, "ipv4_src": str(ip)},
                                    cookie=_cookie(ctx, obj=ctx.backend_ids[ip]), goto="snat"))
    return flows
