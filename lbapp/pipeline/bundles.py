"""ONF bundles (the OpenFlow 1.3 extension OVS implements): a burst of session flow-mods
applied as one change of the flow table.

OVS 3.1's userspace switch slows down on each flow-table change when it holds many flows with
timeouts (bench/README.md: installs at 6,000/s kept pace to 60,000 flows and fell to about
2,000/s at 100,000). A bundle makes a burst one change. The messages are built from bytes
(the hot path); a unit test checks them against os-ken's ``ONFBundleCtrlMsg`` /
``ONFBundleAddMsg``.
"""
from __future__ import annotations

import struct

OFP13 = 4
OFPT_EXPERIMENTER, OFPT_FLOW_MOD, OFPT_GROUP_MOD, OFPT_METER_MOD = 4, 14, 15, 29
TABLE_CHANGES = frozenset({OFPT_FLOW_MOD, OFPT_GROUP_MOD})  # what OVS takes in a bundle (and port-mods)
ONF_EXPERIMENTER = 0x4F4E4600
ONF_ET_BUNDLE_CONTROL, ONF_ET_BUNDLE_ADD_MESSAGE = 2300, 2301
OPEN_REQUEST, COMMIT_REQUEST = 0, 4
FLAGS = 0x3  # atomic and ordered: what OVS does in any case
BUNDLE_MIN_DEFAULT = 16  # session flow-mods in a burst from which it goes as a bundle

_HEADER = struct.Struct("!BBHIII")  # OpenFlow header, experimenter id, experimenter type
_CONTROL = struct.Struct("!IHH")  # bundle id, type, flags
_ADD = struct.Struct("!IHH")  # bundle id, pad, flags


def control(bundle_id: int, ctrl_type: int, xid: int) -> bytes:
    length = _HEADER.size + _CONTROL.size
    return (_HEADER.pack(OFP13, OFPT_EXPERIMENTER, length, xid, ONF_EXPERIMENTER, ONF_ET_BUNDLE_CONTROL)
            + _CONTROL.pack(bundle_id, ctrl_type, FLAGS))


def add(bundle_id: int, message: bytes) -> bytes:
    """``message`` (a whole OpenFlow message) added to the bundle, under the message's own xid
    (the outer and inner xids must match)."""
    xid = struct.unpack_from("!I", message, 4)[0]
    length = _HEADER.size + _ADD.size + len(message)
    return (_HEADER.pack(OFP13, OFPT_EXPERIMENTER, length, xid, ONF_EXPERIMENTER, ONF_ET_BUNDLE_ADD_MESSAGE)
            + _ADD.pack(bundle_id, 0, FLAGS) + message)


def is_flow_mod(message: bytes) -> bool:
    return message[1] == OFPT_FLOW_MOD


def bundled(messages: list[bytes], bundle_id: int, min_flow_mods: int) -> list[bytes]:
    """``messages`` with their flow-mods in one bundle, committed before the other messages
    (the packet-outs that re-inject each connection's first packet must find its flow), when
    there are at least ``min_flow_mods`` of them (0: never); else ``messages`` unchanged."""
    flow_mods = [m for m in messages if is_flow_mod(m)]
    if not min_flow_mods or len(flow_mods) < min_flow_mods:
        return messages
    return ([control(bundle_id, OPEN_REQUEST, bundle_id)] + [add(bundle_id, m) for m in flow_mods]
            + [control(bundle_id, COMMIT_REQUEST, bundle_id)] + [m for m in messages if not is_flow_mod(m)])
