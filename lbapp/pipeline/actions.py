"""Small action helpers shared by the stage builders."""
from __future__ import annotations

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser
from os_ken.ofproto.nicira_ext import ofs_nbits

from lbapp.mac import Segment
from lbapp.shared import PROTOCOL_NAMES, PROTOCOL_NUMBERS

ETH_TYPE_IP = 0x0800
ETH_TYPE_ARP = 0x0806
ARP_REQUEST, ARP_REPLY = 1, 2

# per protocol name: its number and the OpenFlow match fields of its ports
L4 = {name: (number, f"{name}_src", f"{name}_dst") for name, number in PROTOCOL_NUMBERS.items()}
PROTO_NAMES = PROTOCOL_NAMES


def to_controller() -> parser.OFPActionOutput:
    # NO_BUFFER: OVS sends the whole packet; the app re-injects it with a packet-out.
    return parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)


def output(port: int) -> parser.OFPActionOutput:
    return parser.OFPActionOutput(port, 0)


def normal() -> parser.OFPActionOutput:
    return output(ofp.OFPP_NORMAL)


def set_field(**kwargs) -> parser.OFPActionSetField:
    return parser.OFPActionSetField(**kwargs)


def move(src: str, dst: str, n_bits: int, src_ofs: int = 0, dst_ofs: int = 0) -> parser.NXActionRegMove:
    return parser.NXActionRegMove(src_field=src, dst_field=dst, n_bits=n_bits, src_ofs=src_ofs,
                                  dst_ofs=dst_ofs)


def load(dst: str, value: int, ofs: int, n_bits: int) -> parser.NXActionRegLoad:
    return parser.NXActionRegLoad(ofs_nbits=ofs_nbits(ofs, ofs + n_bits - 1), dst=dst, value=value)


def moves(segments: tuple[Segment, ...], src: str, dst: str, *, into_mac: bool) -> list:
    """Moves for a MAC layout's IP segments: IP field -> MAC field, or back."""
    if into_mac:
        return [move(src, dst, s.n_bits, s.src_ofs, s.mac_ofs) for s in segments]
    return [move(src, dst, s.n_bits, s.mac_ofs, s.src_ofs) for s in segments]


def group(group_id: int) -> parser.OFPActionGroup:
    return parser.OFPActionGroup(group_id)


def resubmit(table_id: int) -> parser.NXActionResubmitTable:
    # A group bucket cannot go to a table (an instruction); OVS's resubmit carries it on.
    return parser.NXActionResubmitTable(table_id=table_id)


NAT_SRC = 1  # NX_NAT_F_SRC (OVS's nicira-ext.h): the nat() rewrites the source


def source_nat(ip: str) -> parser.NXActionNAT:
    """nat(src=IP), inside a committing ct(): the connection's source becomes ``ip`` (its port
    kept where it is free) and its replies are translated back."""
    return parser.NXActionNAT(flags=NAT_SRC, range_ipv4_min=ip, range_ipv4_max=ip)


def undo_nat() -> parser.NXActionNAT:
    """nat with no range, inside ct(): the connection's own translation, in either direction."""
    return parser.NXActionNAT(flags=0)


def conntrack(zone: int, *, commit: bool = False, table: int | None = None,
              mark_from: parser.NXActionRegMove | None = None, label: int | None = None,
              nat: parser.NXActionNAT | None = None) -> parser.NXActionCT:
    """OVS's ct(): track in ``zone``, recirculate to ``table`` if given, commit with the mark
    that ``mark_from`` moves into ct_mark and with ``label`` as ct_label, translating as ``nat``."""
    exec_actions = [mark_from] if mark_from is not None else []
    if nat is not None:
        exec_actions.append(nat)
    if label is not None:
        exec_actions.append(parser.OFPActionSetField(ct_label=label))
    return parser.NXActionCT(flags=1 if commit else 0, zone_src="", zone_ofs_nbits=zone,
                             recirc_table=255 if table is None else table, alg=0, actions=exec_actions)
