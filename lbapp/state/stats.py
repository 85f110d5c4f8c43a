"""Session-table statistics requests in flight, each matched to its reply by xid.

Five reasons (``Purpose``) to read a balancer's session table: after it (re)connects and every
minute, to take back the sessions an earlier run left there and forget those gone (``adopt``);
once per dynamic feedback round, to measure each backend's load (``feedback``); while someone
watches (the API's state or metrics), to count each backend's bytes and packets (``traffic``);
while the switch picks for an overloaded VIP, to count its new connections (``overload``); and
at the end of a ``pin: conntrack`` VIP's epoch, to count its live connections (``epoch``). A
reply says which request it answers by its xid, so they never mix.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from lbapp.pipeline import cookies
from lbapp.pipeline.tables import TABLES

Purpose = Literal["adopt", "feedback", "traffic", "overload", "epoch"]
# Our xids stay in their own range, away from os-ken's own counter's start (it counts from 0).
FIRST_XID = 0x1B000000
UNANSWERED_AFTER_S = 30.0  # a request still unanswered then is given up (a switch that never answers)


@dataclass
class Round:
    """One reading of every balancer's session table (feedback, traffic)."""

    waiting: set[int] = field(default_factory=set)  # xids whose last reply part has not come
    bytes: Counter = field(default_factory=Counter)  # what the replies carried, summed by key
    packets: Counter = field(default_factory=Counter)


@dataclass
class Adoption:
    """One reading of a balancer's session table whole (``adopt``): what its reply has shown so far."""

    sent_at: float
    after_install: bool  # sent right after the switch's pipeline was installed (it connected)
    seen: set[int] = field(default_factory=set)  # the session ids of the connections' flows
    kept: bool = False  # the table's "kept" mark (lbapp.pipeline.session.kept_mark)


class StatsRequests:
    """Owns the statistics requests in flight (by xid) and the rounds they belong to. Changed
    only by lbapp.handlers.readings.Readings, its owner, and the Balancer's adoption of what a
    reply shows."""

    def __init__(self) -> None:
        self._next_xid = FIRST_XID
        self.pending: dict[int, tuple[Purpose, int, float]] = {}  # xid -> (why, dpid, sent at)
        self.rounds: dict[Purpose, Round] = {}
        self.adopting: dict[int, Adoption] = {}  # adoption requests, by xid

    def request(self, dpid: int, purpose: Purpose, now: float = 0.0, vip_id: int | None = None,
                pins: bool = False, after_install: bool = False) -> parser.OFPFlowStatsRequest:
        """A request for every session-table flow of ours (with ``vip_id``: only that VIP's own
        flows, its per-connection and pin ones left out; with ``pins`` too, also its pin
        ones), under a fresh xid (sent at ``now``; ``after_install``: an adoption request sent
        right after the switch's pipeline)."""
        stage = TABLES["session"]
        if purpose == "overload":  # every VIP's own flows (object 0): their pick flows count first packets
            cookie, mask = cookies.make(stage.stage), cookies.own_flows_mask()
        elif vip_id is None:
            cookie, mask = cookies.make(stage.stage), cookies.stage_mask()
        elif pins:  # any object: the VIP's pin flows carry their backend's id (and sessions theirs)
            cookie, mask = cookies.make(stage.stage, vip=vip_id), cookies.vip_mask()
        else:  # object id 0: the VIP's flows, not its sessions' nor its pins' (any generation)
            cookie, mask = cookies.make(stage.stage, vip=vip_id), cookies.object_mask()
        msg = parser.OFPFlowStatsRequest(
            datapath=None, table_id=stage.table_id, out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
            cookie=cookie, cookie_mask=mask, match=parser.OFPMatch())
        xid = self._next_xid
        self._next_xid = FIRST_XID if xid >= 0xFFFFFFFF else xid + 1
        msg.set_xid(xid)
        self.pending[xid] = (purpose, dpid, now)
        if purpose == "adopt":
            self.adopting[xid] = Adoption(now, after_install)
        return msg

    def start_round(self, dpids: list[int], purpose: Purpose = "feedback", now: float = 0.0
                    ) -> list[tuple[int, Any]]:
        """A new round over ``dpids``; a round of the same purpose still waiting is abandoned."""
        old = self.rounds.get(purpose)
        for xid in old.waiting if old else ():
            self.pending.pop(xid, None)
        out = [(dpid, self.request(dpid, purpose, now)) for dpid in dpids]
        self.rounds[purpose] = Round({msg.xid for _, msg in out})
        return out

    def round(self, purpose: Purpose) -> Round:
        return self.rounds[purpose]

    def waiting(self, dpid: int, purpose: Purpose) -> bool:
        """Whether a request for ``purpose`` to ``dpid`` waits for its reply."""
        return any(p == purpose and owner == dpid for p, owner, _ in self.pending.values())

    def shown_anyway(self, dpid: int, session_id: int) -> None:
        """A session's flow went back to ``dpid`` after a reading of its table was sent: that
        reading will not show it, but it is there (and is not to be restored twice)."""
        for xid, reading in self.adopting.items():
            if self.pending.get(xid, ("", None))[1] == dpid:
                reading.seen.add(session_id)

    def purpose(self, dpid: int, xid: int) -> Purpose | None:
        """Why the request ``xid`` to ``dpid`` was sent; None for a reply nobody waits for."""
        found = self.pending.get(xid)
        return found[0] if found is not None and found[1] == dpid else None

    def failed(self, dpid: int, xid: int) -> Purpose | None:
        """The switch answered request ``xid`` with an OpenFlow error: it is given up, and so is
        its round (a round read in part would skew what it measures). Its purpose, or None
        when the error is not about one of ours."""
        purpose = self.purpose(dpid, xid)
        if purpose is not None:
            self._give_up([xid])
        return purpose

    def expire(self, now: float) -> int:
        """Give up requests unanswered for ``UNANSWERED_AFTER_S``; how many."""
        old = [xid for xid, (_, _, sent) in self.pending.items() if now - sent > UNANSWERED_AFTER_S]
        self._give_up(old)
        return len(old)

    def _give_up(self, xids: list[int]) -> None:
        for xid in xids:
            purpose, _, _ = self.pending.pop(xid)
            self.adopting.pop(xid, None)
            current = self.rounds.get(purpose)
            if current is not None and xid in current.waiting:
                for other in current.waiting - {xid}:
                    self.pending.pop(other, None)
                del self.rounds[purpose]

    def answered(self, xid: int, more: bool) -> bool:
        """One reply part for ``xid`` came; True when it completed its round."""
        if more:
            return False
        purpose, _, _ = self.pending.pop(xid)
        self.adopting.pop(xid, None)
        current = self.rounds.get(purpose)
        if current is None or xid not in current.waiting:
            return False
        current.waiting.discard(xid)
        return not current.waiting

    def disconnected(self, dpid: int) -> None:
        """A switch went: its requests will not be answered."""
        for xid, (_, owner, _) in list(self.pending.items()):
            if owner == dpid:
                del self.pending[xid]
                self.adopting.pop(xid, None)
                for current in self.rounds.values():
                    current.waiting.discard(xid)
