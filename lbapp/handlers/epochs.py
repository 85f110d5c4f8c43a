"""The end of a ``pin: conntrack`` VIP's epoch (lbapp.state.pinned): on every balancer its
counting flows are read (the connections seen in the epoch) and then moved to the next epoch.
A switch takes OpenFlow messages in order, so the reading is of the epoch that ended."""
from __future__ import annotations

from typing import Any

from lbapp.pipeline import session as session_flows
from lbapp.state.pinned import following
from lbapp.state.running import Running
from lbapp.state.stats import StatsRequests

Out = tuple[int, Any]


def next_epoch(running: Running, requests: StatsRequests, balancers: list[int], vip_id: int,
               now: float) -> list[Out]:
    """Read ``vip_id``'s counting flows and move them on; changes ``running.epochs``."""
    vip, old = running.vips.by_id[vip_id], running.epochs[vip_id]
    new = running.epochs[vip_id] = following(old)
    withheld = running.backends.withheld_pins()
    backends = [b.ip for b in vip.model.backends if (vip_id, b.ip) not in withheld]
    out: list[Out] = []
    for dpid in balancers:
        out.append((dpid, requests.request(dpid, "epoch", now, vip_id, pins=True)))
        out += [(dpid, m) for m in session_flows.next_epoch(running.sites[dpid].ctx, vip_id, vip.model,
                                                            backends, old, new)]
    return out
