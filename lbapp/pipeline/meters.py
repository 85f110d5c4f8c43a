"""The balancer's punt meter (:data:`lbapp.pipeline.tables.METER_PUNT`): the flows that send a
new connection's first packet to the controller pass it, so a flood of new connections costs
the controller at most ``balancer.punt_limit`` packet-ins per second; the rest are dropped in
the switch (a client's TCP sends its SYN again; the overload hand-over, lbapp.state.overload,
meanwhile gives the VIP to the switch's own path)."""
from __future__ import annotations

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from lbapp.pipeline.context import Context
from lbapp.pipeline.tables import METER_PUNT


def punt_meter(ctx: Context, command: int = ofp.OFPMC_ADD) -> parser.OFPMeterMod:
    """The meter at this balancer's ``punt_limit`` (``command``: add or modify); bursts of a
    tenth of a second pass whole."""
    rate = ctx.balancer.punt_limit
    return parser.OFPMeterMod(datapath=None, command=command, flags=ofp.OFPMF_PKTPS | ofp.OFPMF_BURST,
                              meter_id=METER_PUNT,
                              bands=[parser.OFPMeterBandDrop(rate=rate, burst_size=max(rate // 10, 1))])


def remove_punt_meter() -> parser.OFPMeterMod:
    """Deleting a meter deletes the flows that use it: only before the static flows go in."""
    return parser.OFPMeterMod(datapath=None, command=ofp.OFPMC_DELETE, meter_id=METER_PUNT)
