"""The hot path's patched bytes are exactly what os-ken serialises for the same messages."""
import ipaddress
import random

import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from lbapp import packets
from lbapp.pipeline import session
from lbapp.pipeline.fastpath import SessionTemplate, packet_out_to_table, serialize
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
