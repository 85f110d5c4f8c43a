"""The hot path's patched bytes are exactly what os-ken serialises for the same messages, and
its packet-in reader reads what os-ken's parser reads (or declines the message)."""
import ipaddress
import random
import struct

import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from lbapp import packets
from lbapp.pipeline import session
from lbapp.pipeline.fastpath import SessionTemplate, packet_out_to_table, parse_packet_in, serialize
from lbapp.schedulers.base import ConnKey
from tests.helpers.frames import tcp_frame, udp_frame

IP = ipaddress.IPv4Address


@pytest.mark.parametrize("protocol, port, idle", [(6, 80, 30), (17, 5353, 10), (6, 65535, 1)])
def test_session_template_matches_os_ken_serialisation(protocol, port, idle):
    rng = random.Random(port)
    vip = IP("117.78.6.19")
    template = SessionTemplate(3, vip, protocol, port, idle)
    for _ in range(300):
        key = ConnKey(protocol, IP(rng.randrange(1 << 32)), rng.randrange(1, 65536), vip, port)
        sid, mac = rng.randrange(1, 1 << 32), rng.randrange(1 << 48) & ~(1 << 40)
        assert template.render(key, sid, mac).buf == serialize(session.install(key, 3, sid, mac, idle))


def test_packet_out_matches_os_ken_serialisation():
    data = tcp_frame("aa:bb:cc:dd:ee:ff", "02:00:00:00:00:02", "200.1.1.19", "117.78.6.19", 40000, 80)
    slow = parser.OFPPacketOut(datapath=None, buffer_id=ofp.OFP_NO_BUFFER, in_port=7,
                               actions=[parser.OFPActionOutput(ofp.OFPP_TABLE, 0)], data=data)
    assert packet_out_to_table(data, 7).buf == serialize(slow)


def test_fast_frame_reader_agrees_with_the_packet_library():
    frames = [tcp_frame("aa:bb:cc:dd:ee:ff", "02:00:00:00:00:02", "200.1.1.19", "117.78.6.19", 40000, 80),
              udp_frame("aa:bb:cc:dd:ee:ff", "02:00:00:00:00:02", "10.1.2.3", "117.78.6.19", 5353, 53)]
    for frame in frames:
        assert packets.connection_key(frame) == packets.parse_connection(frame)
    with pytest.raises(packets.PacketError):
        packets.connection_key(b"\x00" * 20)


def _packet_in(match: parser.OFPMatch, data: bytes, cookie: int = 0x1234_5678_9ABC_DEF0,
               total_len: int | None = None) -> bytearray:
    """A packet-in as OVS writes it: header, buffer_id, total_len, reason, table_id, cookie,
    the match padded to 8 bytes, 2 pad bytes, the packet."""
    buf = bytearray(24)
    match.serialize(buf, 24)
    buf += bytes(2) + data
    struct.pack_into("!BBHIIHBBQ", buf, 0, ofp.OFP_VERSION, ofp.OFPT_PACKET_IN, len(buf), 7,
                     ofp.OFP_NO_BUFFER, len(data) if total_len is None else total_len, ofp.OFPR_ACTION, 20, cookie)
    return buf


def _os_ken_reads(buf: bytearray) -> tuple[int, int, bytes]:
    msg = parser.OFPPacketIn.parser(None, ofp.OFP_VERSION, ofp.OFPT_PACKET_IN, len(buf), 7, bytes(buf))
    return msg.cookie, msg.match["in_port"], bytes(msg.data)


MATCHES = [parser.OFPMatch(in_port=3),
           parser.OFPMatch(in_port=0xFFFFFFF0, metadata=(0x10, 0xFF)),  # a masked field after in_port
           parser.OFPMatch(in_port=17, reg1=0x0A0B0C0D, ct_state=(0x21, 0x21), ct_mark=5, vlan_vid=0x1000 | 12),
           parser.OFPMatch(in_port=1, tunnel_id=99, eth_type=0x0800)]


@pytest.mark.parametrize("match", MATCHES)
def test_packet_in_reader_agrees_with_os_ken(match):
    rng = random.Random(1)
    for size in (0, 1, 54, 60, 1514):
        data = bytes(rng.randrange(256) for _ in range(size))
        buf = _packet_in(match, data, cookie=rng.randrange(1 << 64))
        assert parse_packet_in(buf) == _os_ken_reads(buf)
        # total_len: shorter when a switch pads the message (the packet is cut to it), longer
        # when the switch sent only the packet's head (the packet is what came)
        for total_len in (max(size - 6, 0), size + 100):
            buf = _packet_in(match, data, total_len=total_len)
            assert parse_packet_in(buf) == _os_ken_reads(buf)


def test_packet_in_reader_declines_anything_odd():
    frame = tcp_frame("aa:bb:cc:dd:ee:ff", "02:00:00:00:00:02", "200.1.1.19", "117.78.6.19", 40000, 80)
    good = _packet_in(parser.OFPMatch(in_port=3, reg1=9), frame)
    assert parse_packet_in(good) is not None
    no_in_port = _packet_in(parser.OFPMatch(reg1=9), frame)
    assert parse_packet_in(no_in_port) is None
    twice = bytearray(24)  # in_port twice (os-ken's match keeps one of them)
    twice += struct.pack("!HHIIII", ofp.OFPMT_OXM, 20, ofp.OXM_OF_IN_PORT, 1, ofp.OXM_OF_IN_PORT, 2) + bytes(4 + 2)
    twice += frame
    struct.pack_into("!BBHIIHBBQ", twice, 0, ofp.OFP_VERSION, ofp.OFPT_PACKET_IN, len(twice), 7,
                     ofp.OFP_NO_BUFFER, len(frame), ofp.OFPR_ACTION, 20, 1)
    assert parse_packet_in(twice) is None
    for cut in (0, 8, 27, 30, 40, len(good) - 1):  # truncated anywhere
        assert parse_packet_in(good[:cut]) is None
    for at, value in ((0, 1),  # OpenFlow 1.0
                      (1, ofp.OFPT_FLOW_REMOVED),
                      (2, 0xFF),  # a length that is not the message's
                      (25, 0),  # match type 0: not OXM
                      (26, 0xFF),  # match length beyond the message
                      (27, 3),  # match length shorter than its header
                      (31, 0xF0)):  # in_port's field length runs past the match
        odd = bytearray(good)
        odd[at] = value
        assert parse_packet_in(odd) is None, at
