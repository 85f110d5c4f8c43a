"""The per-connection hot path: pre-serialised OpenFlow messages patched in place, and the
packet-in read straight from its bytes.

Building an ``OFPMatch`` and serialising a flow-mod with os-ken costs ~70 us; patching a few
bytes of a message serialised once costs well under 1 us (measured in bench/). Each template is
made once per VIP from the same builder the rest of the pipeline uses (``session.install``)
with sentinel values, and the positions of the sentinels are where a connection's values go;
a unit test checks, for many connections, that the patched bytes equal what os-ken serialises.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from lbapp.pipeline import session
from lbapp.schedulers.base import ConnKey

_SENTINEL_SRC = ipaddress.IPv4Address("198.18.254.253")
_SENTINEL_PORT = 65197
_SENTINEL_MAC = 0x0EADBEEFFEED
_SENTINEL_SESSION = 0xDEADBEEF
_OUTPUT_TABLE = struct.pack("!HHIH6x", ofp.OFPAT_OUTPUT, 16, ofp.OFPP_TABLE, 0)
_PACKET_OUT = struct.Struct("!BBHIIIH6x")
# ofp_packet_in up to its match: header, buffer_id, total_len, reason, table_id, cookie; then
# the match's type and length
_PACKET_IN = struct.Struct("!BBHIIHBBQHH")
_U32 = struct.Struct("!I")  # an OXM field's header; in_port's value


class _Datapath:
    """Just what os-ken's serialisers read from a datapath."""

    ofproto = ofp
    ofproto_parser = parser
    id = 0


def serialize(msg: Any) -> bytes:
    """os-ken's own serialisation of ``msg``, with xid 0."""
    msg.datapath = _Datapath()
    msg.set_xid(0)
    msg.serialize()
    return bytes(msg.buf)


@dataclass
class RawMessage:
    """A serialised OpenFlow message for the sender, with what it was built from (for logs and
    tests: the bytes are what goes to the switch)."""

    buf: bytes
    kind: str
    info: dict = field(default_factory=dict)


def _find(buf: bytes, needle: bytes, what: str) -> int:
    at = buf.find(needle)
    if at < 0 or buf.find(needle, at + 1) >= 0:
        raise ValueError(f"session template: sentinel for {what} not found exactly once")
    return at


class SessionTemplate:
    """One VIP's session flow-mod; per connection the cookie, client address and port and the
    fabricated MAC are patched."""

    def __init__(self, vip_id: int, vip_ip: ipaddress.IPv4Address, protocol: int, port: int,
                 idle_timeout: int) -> None:
        self.vip_id, self.idle_timeout = vip_id, idle_timeout
        key = ConnKey(protocol, _SENTINEL_SRC, _SENTINEL_PORT, vip_ip, port)
        self.buf = bytearray(serialize(session.install(key, vip_id, _SENTINEL_SESSION, _SENTINEL_MAC, idle_timeout)))
        self.cookie_at = 8  # ofp_flow_mod: header (8), then the cookie
        self.src_at = _find(self.buf, _SENTINEL_SRC.packed, "ipv4_src")
        self.port_at = _find(self.buf, _SENTINEL_PORT.to_bytes(2, "big"), "tp_src")
        self.mac_at = _find(self.buf, _SENTINEL_MAC.to_bytes(6, "big"), "eth_dst")

    def render(self, key: ConnKey, session_id: int, fabricated_mac: int) -> RawMessage:
        buf = self.buf
        struct.pack_into("!Q", buf, self.cookie_at, session.session_cookie(self.vip_id, session_id))
        buf[self.src_at:self.src_at + 4] = key.src_ip.packed
        struct.pack_into("!H", buf, self.port_at, key.src_port)
        buf[self.mac_at:self.mac_at + 6] = fabricated_mac.to_bytes(6, "big")
        return RawMessage(bytes(buf), "session", {"cookie": session.session_cookie(self.vip_id, session_id),
                                                   "key": key, "eth_dst": fabricated_mac,
                                                   "idle_timeout": self.idle_timeout,
                                                   "table_id": session.TABLE.table_id})


class PickTemplate:
    """The packet-out that forwards a ``pin: conntrack`` connection's first packet and pins it
    (:func:`lbapp.pipeline.session.pick_packet_out`); per connection the input port, the
    backend, its fabricated MAC and the packet are patched in."""

    def __init__(self) -> None:
        msg = session.pick_packet_out(_SENTINEL_SRC, _SENTINEL_MAC, ofp.OFPP_CONTROLLER, b"")
        self.head = bytearray(serialize(msg))
        self.backend_at = _find(self.head, _SENTINEL_SRC.packed, "reg1")
        self.mac_at = _find(self.head, _SENTINEL_MAC.to_bytes(6, "big"), "eth_dst")

    def render(self, backend: ipaddress.IPv4Address, fabricated_mac: int, in_port: int, data: bytes) -> RawMessage:
        head = self.head
        struct.pack_into("!H", head, 2, len(head) + len(data))
        struct.pack_into("!I", head, 12, in_port)  # ofp_packet_out: header (8), buffer_id (4), in_port
        head[self.backend_at:self.backend_at + 4] = backend.packed
        head[self.mac_at:self.mac_at + 6] = fabricated_mac.to_bytes(6, "big")
        return RawMessage(bytes(head) + data, "pick", {"in_port": in_port, "backend": backend,
                                                       "eth_dst": fabricated_mac})


def packet_out_to_table(data: bytes, in_port: int) -> RawMessage:
    """Re-inject ``data`` at table 0 as if it had arrived on ``in_port``."""
    head = _PACKET_OUT.pack(ofp.OFP_VERSION, ofp.OFPT_PACKET_OUT, _PACKET_OUT.size + len(_OUTPUT_TABLE) + len(data), 0,
                            ofp.OFP_NO_BUFFER, in_port, len(_OUTPUT_TABLE))
    return RawMessage(head + _OUTPUT_TABLE + data, "packet_out", {"in_port": in_port, "port": ofp.OFPP_TABLE})


def packet_out(data: bytes, in_port: int, actions: list) -> parser.OFPPacketOut:
    """A packet-out of ``data`` with ``actions`` (off the hot path: built with os-ken's parser)."""
    return parser.OFPPacketOut(datapath=None, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port, actions=actions,
                               data=data)


def parse_packet_in(buf: bytes | bytearray) -> tuple[int, int, bytes] | None:
    """An OpenFlow 1.3 packet-in's cookie, input port and packet, read with a few ``struct``
    calls instead of os-ken's parser (which builds its match object: about 70 us per packet-in,
    more than the pick). None for anything that is not a whole, well-formed packet-in with one
    ``in_port`` in its match."""
    if len(buf) < _PACKET_IN.size:
        return None
    version, msg_type, length, _, _, total_len, _, _, cookie, match_type, match_len = _PACKET_IN.unpack_from(buf)
    match_end = _PACKET_IN.size - 4 + match_len  # the match's length counts its own header, not its padding
    data_at = _PACKET_IN.size - 4 + (match_len + 7) // 8 * 8 + 2  # the match padded to 8 bytes, then 2 pad bytes
    if (version != ofp.OFP_VERSION or msg_type != ofp.OFPT_PACKET_IN or length != len(buf)
            or match_type != ofp.OFPMT_OXM or match_len < 4 or data_at > length):
        return None
    in_port, at = None, _PACKET_IN.size
    while at + 4 <= match_end:
        header = _U32.unpack_from(buf, at)[0]
        if header == ofp.OXM_OF_IN_PORT and at + 8 <= match_end:
            if in_port is not None:  # twice: odd
                return None
            in_port = _U32.unpack_from(buf, at + 4)[0]
        at += 4 + (header & 0xFF)  # the header's last byte: the value's length
    if in_port is None or at != match_end:
        return None
    # as os-ken's parser: the packet is total_len long when a switch pads the message further
    return cookie, in_port, bytes(buf[data_at:data_at + total_len])
