"""Bundles built from bytes equal os-ken's own messages, and wrap a burst as the switch needs."""
import struct

from os_ken.ofproto import ofproto_v1_3_parser as parser

from lbapp.pipeline import bundles
from lbapp.pipeline.fastpath import _Datapath, serialize

FLOW_MOD = serialize(parser.OFPFlowMod(datapath=None, table_id=20, priority=100, match=parser.OFPMatch(eth_type=0x800)))
PACKET_OUT = serialize(parser.OFPPacketOut(datapath=None, buffer_id=0xFFFFFFFF, in_port=1, actions=[], data=b"x" * 60))


def with_xid(msg: bytes, xid: int) -> bytes:
    return msg[:4] + struct.pack("!I", xid) + msg[8:]


def oskens(msg, xid: int) -> bytes:
    msg.datapath = _Datapath()
    msg.set_xid(xid)
    msg.serialize()
    return bytes(msg.buf)


def test_control_and_add_equal_os_kens_bytes():
    for ctrl_type in (bundles.OPEN_REQUEST, bundles.COMMIT_REQUEST):
        ref = oskens(parser.ONFBundleCtrlMsg(None, bundle_id=7, type_=ctrl_type, flags=3, properties=[]), 7)
        assert bundles.control(7, ctrl_type, 7) == ref
    inner = with_xid(FLOW_MOD, 99)
    ref = parser.ONFBundleAddMsg(None, bundle_id=7, flags=3, message=parser.OFPFlowMod(
        datapath=_Datapath(), table_id=20, priority=100, match=parser.OFPMatch(eth_type=0x800)), properties=[])
    ref.message.set_xid(99)
    assert bundles.add(7, inner) == oskens(ref, 99)


def test_a_burst_commits_its_flow_mods_before_the_packet_outs():
    burst = [with_xid(FLOW_MOD, 1), PACKET_OUT, with_xid(FLOW_MOD, 2), PACKET_OUT]
    out = bundles.bundled(burst, bundle_id=5, min_flow_mods=2)
    kinds = [(m[1], struct.unpack_from("!I", m, 12)[0] if m[1] == 4 else None) for m in out]
    assert kinds == [(4, 2300), (4, 2301), (4, 2301), (4, 2300), (13, None), (13, None)]
    assert struct.unpack_from("!H", out[3], 20)[0] == bundles.COMMIT_REQUEST
    assert out[1].endswith(with_xid(FLOW_MOD, 1)) and out[2].endswith(with_xid(FLOW_MOD, 2))


def test_small_bursts_and_a_zero_minimum_go_as_they_are():
    burst = [FLOW_MOD, PACKET_OUT]
    assert bundles.bundled(burst, 1, min_flow_mods=2) == burst
    assert bundles.bundled(burst * 10, 1, min_flow_mods=0) == burst * 10
