"""A Balancer's requests to a switch, as a test rig answers or sorts them: its table readings
apart from the overload hand-over's per-second reading of every VIP's pick flow (which every
tick with a controller-picked VIP sends), and the health checks' barriers answered at once."""
from __future__ import annotations

from os_ken.ofproto import ofproto_v1_3_parser as parser

from lbapp.pipeline import cookies


def is_pick_reading(msg) -> bool:
    """The hand-over's reading of the VIPs' pick-flow counters."""
    return isinstance(msg, parser.OFPFlowStatsRequest) and msg.cookie_mask == cookies.own_flows_mask()


def table_reads(out) -> list:
    """The flow-stats requests in ``out`` (a Balancer's (dpid, message) list), but the pick reading."""
    return [m for _, m in out if isinstance(m, parser.OFPFlowStatsRequest) and not is_pick_reading(m)]


def without_pick_reading(out) -> list:
    return [(dpid, m) for dpid, m in out if not is_pick_reading(m)]


def tick(lb, now: float) -> list:
    """``lb.tick(now)``, each barrier it sends answered at once (a switch with no queue): the
    health checks judge their late probes right away."""
    out = lb.tick(now)
    for dpid, msg in list(out):
        if isinstance(msg, parser.OFPBarrierRequest):
            out += lb.barrier_reply(dpid, msg.xid, now)
    return out
