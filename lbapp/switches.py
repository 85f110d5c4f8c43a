"""Which OpenFlow connection speaks for each datapath id.

Anyone who reaches the controller's port can claim any datapath id (plain TCP on loopback is the
default; TLS is the real answer). A switch that is alive is never replaced: a connection claiming
an id in use waits while the connection in use is asked for an echo; an answer within
:data:`ECHO_DEADLINE_S` refuses the newcomer (logged with where it came from, and hung up on);
silence, or the connection in use closing, hands the id to the newcomer (a switch that came back
before its old connection was seen to end). Only the connection in use is sent anything of
lbapp's, and only its messages reach the balancer.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from lbapp import oskenfix

LOG = logging.getLogger("lbapp")
ECHO_DEADLINE_S = 1.0


@dataclass
class _Claim:
    """A newcomer claiming a datapath id in use, waiting on the holder's echo."""

    newcomer: Any
    holder: Any
    token: bytes  # the echo request's data: only the holder's answer carries it
    deadline: float


class SwitchConnections:
    """Owns the connection in use per datapath id (``datapaths``: the sender writes to these)
    and the claims waiting on an echo. Changed only by the app's handlers (a connection's
    handshake, an echo reply, a connection's end) and its ticker, under the app's lock."""

    def __init__(self) -> None:
        self.datapaths: dict[int, Any] = {}
        self.claims: dict[int, _Claim] = {}

    def in_use(self, dp) -> bool:
        """Whether ``dp`` is the connection that speaks for its datapath id."""
        return dp.id is not None and self.datapaths.get(dp.id) is dp

    def connected(self, dp, dpid: int, now: float) -> bool:
        """``dp`` finished its handshake claiming ``dpid``: True when it is now the connection in
        use; False when it waits on the holder's echo, or is refused (a claim already waits)."""
        holder = self.datapaths.get(dpid)
        if holder is None:
            self.datapaths[dpid] = dp
            return True
        if dpid in self.claims:
            self._refuse(dpid, dp, "another claim of it is being checked")
            return False
        claim = self.claims[dpid] = _Claim(dp, holder, os.urandom(8), now + ECHO_DEADLINE_S)
        holder.send_msg(holder.ofproto_parser.OFPEchoRequest(holder, data=claim.token))
        LOG.warning("switch %016x: a connection from %s claims this datapath id, in use by the one from %s: "
                    "asking that one for an echo", dpid, oskenfix.peer(dp), oskenfix.peer(holder))
        return False

    def echo_reply(self, dp, data: bytes) -> None:
        """An echo reply from ``dp``: the holder of a checked id answered, the newcomer is refused."""
        for dpid, claim in list(self.claims.items()):
            if claim.holder is dp and bytes(data) == claim.token:
                del self.claims[dpid]
                self._refuse(dpid, claim.newcomer, f"the connection from {oskenfix.peer(dp)} in use answers")

    def expired(self, now: float) -> list[int]:
        """Claims whose holder did not answer in time: the newcomer takes the id, the silent
        holder is hung up on. The ids whose connection changed."""
        taken = []
        for dpid, claim in list(self.claims.items()):
            if now >= claim.deadline:
                del self.claims[dpid]
                LOG.warning("switch %016x: the connection from %s did not answer an echo in %g s: the one from %s "
                            "takes over", dpid, oskenfix.peer(claim.holder), ECHO_DEADLINE_S,
                            oskenfix.peer(claim.newcomer))
                self.datapaths[dpid] = claim.newcomer
                oskenfix.hang_up(claim.holder)
                taken.append(dpid)
        return taken

    def gone(self, dp) -> str:
        """``dp`` ended: "handed over" (it was in use and a newcomer waited: the newcomer takes
        the id), "released" (it was in use: the switch is gone), or "" (it was not in use)."""
        for dpid, claim in list(self.claims.items()):
            if claim.newcomer is dp:
                del self.claims[dpid]
        if not self.in_use(dp):
            return ""
        claim = self.claims.pop(dp.id, None)
        if claim is not None:
            LOG.warning("switch %016x: the connection from %s went; the one from %s, which claimed it, takes over",
                        dp.id, oskenfix.peer(dp), oskenfix.peer(claim.newcomer))
            self.datapaths[dp.id] = claim.newcomer
            return "handed over"
        del self.datapaths[dp.id]
        return "released"

    def _refuse(self, dpid: int, dp, why: str) -> None:
        LOG.warning("switch %016x: refused the connection from %s claiming this datapath id: %s", dpid,
                    oskenfix.peer(dp), why)
        oskenfix.hang_up(dp)
