"""The flow-mods that take a switch from one build of its flows to another: what a reload sends
instead of the whole pipeline. A flow is known, as OpenFlow knows it, by its table, priority and
match; one that is new or differs in anything else (cookie, actions, timeouts) is added (an add
replaces the flow of the same match and priority), one that is gone is deleted strictly, by its
match, priority and whole cookie, so nothing else is touched."""
from __future__ import annotations

from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from lbapp.pipeline.fastpath import serialize

_MATCH_AT = ofp.OFP_FLOW_MOD_SIZE - ofp.OFP_MATCH_SIZE  # where ofp_flow_mod's ofp_match (type, length, fields) starts
_WHOLE_COOKIE = (1 << 64) - 1


def changes(before: list[Any], after: list[Any]) -> tuple[list[Any], list[Any]]:
    """(flow-mods to send, removals) from ``before``'s flows to ``after``'s (flow-mods that
    add; a later one of the same match and priority stands for it, as in the switch)."""
    old, new = _by_identity(before), _by_identity(after)
    sends = [msg for key, (raw, msg) in new.items() if key not in old or old[key][0] != raw]
    gone = [removal(msg) for key, (_, msg) in old.items() if key not in new]
    return sends, gone


def removal(flow: parser.OFPFlowMod) -> parser.OFPFlowMod:
    """The strict delete of ``flow``: its table, priority, match and whole cookie."""
    return parser.OFPFlowMod(datapath=None, cookie=flow.cookie, cookie_mask=_WHOLE_COOKIE, table_id=flow.table_id,
                             command=ofp.OFPFC_DELETE_STRICT, priority=flow.priority, out_port=ofp.OFPP_ANY,
                             out_group=ofp.OFPG_ANY, match=flow.match)


def _by_identity(flows: list[Any]) -> dict[tuple[int, int, bytes], tuple[bytes, Any]]:
    found = {}
    for msg in flows:
        raw = serialize(msg)
        msg.xid = None  # the sender gives it its own
        match_length = int.from_bytes(raw[_MATCH_AT + 2:_MATCH_AT + 4], "big")
        found[(msg.table_id, msg.priority, raw[_MATCH_AT:_MATCH_AT + (match_length + 7) // 8 * 8])] = (raw, msg)
    return found
