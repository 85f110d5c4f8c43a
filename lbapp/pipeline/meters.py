"""The balancer's meters. The punt meter (:data:`lbapp.pipeline.tables.METER_PUNT`): the flows
that send a new connection's first packet to the controller pass it, so a flood of new
connections costs the controller at most ``balancer.punt_limit`` packet-ins per second; the rest
are dropped in the switch (a client's TCP sends its SYN again; the overload hand-over,
lbapp.state.overload, meanwhile gives the VIP to the switch's own path). The probe meter
(:data:`~lbapp.pipeline.tables.METER_PROBE`) does the same for the probe stage's answers from
checked backends, at ``balancer.probe_limit``, and a third for its ICMP unreachables, at a tenth
of that: a flood at the balancer's own address costs no more."""
from __future__ import annotations

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from lbapp.pipeline.context import Context
from lbapp.pipeline.tables import METER_PROBE, METER_PUNT, METER_UNREACHABLE


def balancer_meters(ctx: Context, command: int = ofp.OFPMC_ADD) -> list[parser.OFPMeterMod]:
    """The punt and probe meters at this balancer's limits (``command``: add or modify)."""
    probe = ctx.balancer.probe_limit
    return [_meter(METER_PUNT, ctx.balancer.punt_limit, command), _meter(METER_PROBE, probe, command),
            _meter(METER_UNREACHABLE, max(probe // 10, 1), command)]


def _meter(meter_id: int, rate: int, command: int) -> parser.OFPMeterMod:
    """Dropping above ``rate`` packets a second; bursts of a tenth of a second pass whole."""
    return parser.OFPMeterMod(datapath=None, command=command, flags=ofp.OFPMF_PKTPS | ofp.OFPMF_BURST,
                              meter_id=meter_id,
                              bands=[parser.OFPMeterBandDrop(rate=rate, burst_size=max(rate // 10, 1))])


def remove_meters() -> list[parser.OFPMeterMod]:
    """Deleting a meter deletes the flows that use it: only before the static flows go in."""
    return [parser.OFPMeterMod(datapath=None, command=ofp.OFPMC_DELETE, meter_id=m)
            for m in (METER_PUNT, METER_PROBE, METER_UNREACHABLE)]
