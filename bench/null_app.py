"""The reference: an os-ken app that answers each packet-in with one pre-serialised
packet-out and does nothing else. What any os-ken app on this machine can at best reach."""
from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3

import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ofswitch import syn_frame  # noqa: E402

_FRAME = bytes(syn_frame("200.1.1.19", "117.78.6.19", 80, b"\xaa\xbb\xcc\xdd\xee\xff", b"\x02\x00\x00\x00\x00\x02"))
_ACTION = struct.pack("!HHIH6x", 0, 16, 0xFFFFFFF9, 0)  # output:TABLE
_PACKET_OUT = struct.pack("!BBHIIIH6x", 4, 13, 24 + len(_ACTION) + len(_FRAME), 0, 0xFFFFFFFF, 1,
                          len(_ACTION)) + _ACTION + _FRAME


class NullApp(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev):
        ev.msg.datapath.send(_PACKET_OUT)
