"""Session-table statistics requests in flight, each matched to its reply by xid.

Two reasons to read a balancer's session table: after it (re)connects, to take back the
sessions an earlier run left there (adoption); and once per dynamic feedback round, to measure
each backend's load. A reply says which request it answers by its xid, so the two never mix.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from lbapp.pipeline import cookies
from lbapp.pipeline.tables import TABLES
from lbapp.shared import IPv4

Purpose = Literal["adopt", "feedback"]
# Our xids stay in their own range, away from os-ken's own counter's start (it counts from 0).
FIRST_XID = 0x1B000000


@dataclass
class FeedbackRound:
    waiting: set[int] = field(default_factory=set)  # xids whose last reply part has not come
    bytes: Counter[IPv4] = field(default_factory=Counter)  # bytes of live sessions, per backend


class StatsRequests:
    def __init__(self) -> None:
        self._next_xid = FIRST_XID
        self.pending: dict[int, tuple[Purpose, int]] = {}  # xid -> (why, dpid)
        self.round: FeedbackRound | None = None

    def request(self, dpid: int, purpose: Purpose) -> parser.OFPFlowStatsRequest:
        """A request for every session-table flow of ours, under a fresh xid."""
        stage = TABLES["session"]
        msg = parser.OFPFlowStatsRequest(
            datapath=None, table_id=stage.table_id, out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
            cookie=cookies.make(stage.stage), cookie_mask=cookies.stage_mask(), match=parser.OFPMatch())
        xid = self._next_xid
        self._next_xid = FIRST_XID if xid >= 0xFFFFFFFF else xid + 1
        msg.set_xid(xid)
        self.pending[xid] = (purpose, dpid)
        return msg

    def start_round(self, dpids: list[int]) -> list[tuple[int, parser.OFPFlowStatsRequest]]:
        """A new feedback round over ``dpids``; a round still waiting is abandoned."""
        if self.round is not None:
            for xid in self.round.waiting:
                self.pending.pop(xid, None)
        out = [(dpid, self.request(dpid, "feedback")) for dpid in dpids]
        self.round = FeedbackRound({msg.xid for _, msg in out})
        return out

    def purpose(self, dpid: int, xid: int) -> Purpose | None:
        """Why the request ``xid`` to ``dpid`` was sent; None for a reply nobody waits for."""
        found = self.pending.get(xid)
        return found[0] if found is not None and found[1] == dpid else None

    def answered(self, xid: int, more: bool) -> bool:
        """One reply part for ``xid`` came; True when it completed the feedback round."""
        if more:
            return False
        purpose, _ = self.pending.pop(xid)
        if purpose != "feedback" or self.round is None:
            return False
        self.round.waiting.discard(xid)
        return not self.round.waiting

    def disconnected(self, dpid: int) -> None:
        """A switch went: its requests will not be answered."""
        for xid, (_, owner) in list(self.pending.items()):
            if owner == dpid:
                del self.pending[xid]
                if self.round is not None:
                    self.round.waiting.discard(xid)
