"""Stage session (table 20): per-connection translation rules chosen by the scheduler."""
from __future__ import annotations

from lbapp import mac as macs
from lbapp.pipeline import cookies
from lbapp.pipeline.actions import ETH_TYPE_IP, L4, PROTO_NAMES, set_field, to_controller
from lbapp.pipeline.context import Context
from lbapp.pipeline.tables import TABLES
from lbapp.schedulers.base import ConnKey

TABLE = TABLES["session"]


def session_cookie(vip_id: int, session_id: int) -> int:
    # Sessions carry no generation: they outlive a controller restart and are never swept.
    return cookies.make(TABLE.stage, vip=vip_id, obj=session_id)


def connection_match(key: ConnKey) -> dict:
    _, src_field, dst_field = L4[PROTO_NAMES[key.protocol]]
    return {"eth_type": ETH_TYPE_IP, "ip_proto": key.protocol, "ipv4_src": str(key.src_ip),
            "ipv4_dst": str(key.dst_ip), src_field: key.src_port, dst_field: key.dst_port}


def install(key: ConnKey, vip_id: int, session_id: int, fabricated_mac: int, idle_timeout: int):
    return TABLE.flow("connection", connection_match(key), cookie=session_cookie(vip_id, session_id),
                      actions=[set_field(eth_dst=macs.format_mac(fabricated_mac))], goto="translate",
                      idle_timeout=idle_timeout, send_flow_removed=True)


def remove(key: ConnKey, vip_id: int, session_id: int):
    return TABLE.delete(connection_match(key), cookie=session_cookie(vip_id, session_id),
                        cookie_mask=cookies.object_mask(), priority="connection")


def balancer_flows(ctx: Context) -> list:
    flows = [TABLE.miss_flow(ctx.generation)]
    for vip_id, vip in ctx.balanced_vips():
        proto, _, dst_field = L4[vip.protocol]
        flows.append(TABLE.flow("new_connection", {"eth_type": ETH_TYPE_IP, "ip_proto": proto,
                                                   "ipv4_dst": str(vip.ip), dst_field: vip.port},
                                cookie=cookies.make(TABLE.stage, generation=ctx.generation, vip=vip_id),
                                actions=[to_controller()]))
    return flows
