"""Live connections of ``pin: conntrack`` VIPs, counted from what the switch saw.

Such a VIP's connections have no flow of their own: the packet-out that forwards a connection's
first packet commits it to conntrack, with its backend as the mark. No flow-removed then tells
the controller that a connection ended, so the switch counts for it, per backend, in epochs of
the VIP's idle timeout: a connection's first packet in an epoch re-commits it with the epoch as
its label, through a flow whose packet counter therefore counts the connections seen in the
epoch (:func:`lbapp.pipeline.session.pinned_flows`). When an epoch ends the controller reads
that counter and moves the VIP's flows to the next epoch.

A backend's live connections: those seen in the last full epoch, plus those picked since it
ended. A connection is so counted from its pick until it has been idle for one to two idle
timeouts, as a session flow's idle timeout counts it (a closed connection also stays counted
until then). Pure: no clock of its own, no OpenFlow.
"""
from __future__ import annotations

from collections import Counter

from lbapp.shared import IPv4

EPOCH_LIMIT = (1 << 32) - 1  # the epoch lives in the low 32 bits of ct_label; 0 means "just picked"


def following(epoch: int) -> int:
    """The epoch after ``epoch`` (1 after the last: 0 is never one)."""
    return epoch % EPOCH_LIMIT + 1


class PinnedCounts:
    """Owns what was counted of ``pin: conntrack`` VIPs' connections: when each epoch ends, the
    switches' counters as last read, and the picks per epoch. Held by
    lbapp.handlers.readings.Readings, which adds readings; lbapp.handlers.connections adds
    ``picked``, and the Balancer calls ``ending`` on its tick and ``keep_only`` after a reload."""

    def __init__(self) -> None:
        self.due: dict[int, float] = {}  # vip id -> when its epoch ends
        # per (dpid, vip id): backend -> connections seen in its last full epoch, as read
        self.seen: dict[tuple[int, int], Counter[IPv4]] = {}
        self.read: dict[tuple[int, int, IPv4], int] = {}  # (dpid, vip id, backend) -> its counter, as last read
        self.picks: dict[tuple[int, int], Counter[IPv4]] = {}  # (dpid, vip id) -> picked in the current epoch
        # (dpid, vip id) -> picked in the epoch just ended, until the switch's count for it is read
        self.unread: dict[tuple[int, int], Counter[IPv4]] = {}

    def picked(self, dpid: int, vip_id: int, backend: IPv4) -> None:
        self.picks.setdefault((dpid, vip_id), Counter())[backend] += 1

    def ending(self, periods: dict[int, float], now: float) -> list[int]:
        """The VIPs (id -> epoch length in seconds) whose epoch ends at ``now``; their picks now
        wait for the switch's count of the epoch. A VIP seen first starts its first epoch."""
        ended = []
        for vip_id, period in periods.items():
            due = self.due.get(vip_id)
            if due is None:
                self.due[vip_id] = now + period
            elif now >= due:
                self.due[vip_id] = now + period
                ended.append(vip_id)
                for key in [k for k in self.picks if k[1] == vip_id]:
                    self.unread[key] = self.picks.pop(key)
        return ended

    def reading(self, dpid: int, vip_id: int, counters: dict[IPv4, int]) -> None:
        """The switch ``dpid``'s counting flows of ``vip_id`` (backend -> packet count), read as
        an epoch ended. The increase since the last reading is the epoch's count; a counter
        below its last reading was installed afresh meanwhile (a reconnect) and counts from 0."""
        seen = Counter()
        for backend, count in counters.items():
            last = self.read.get((dpid, vip_id, backend), 0)
            seen[backend] = count - last if count >= last else count
            self.read[(dpid, vip_id, backend)] = count
        self.seen[(dpid, vip_id)] = +seen
        self.unread.pop((dpid, vip_id), None)

    def live(self, vip_id: int) -> Counter[IPv4]:
        """Live connections per backend of ``vip_id``, over every balancer."""
        total: Counter[IPv4] = Counter()
        for counts in (self.seen, self.unread, self.picks):
            for (_, vip), by_backend in counts.items():
                if vip == vip_id:
                    total.update(by_backend)
        return total

    def disconnected(self, dpid: int) -> None:
        """A switch went: its counting flows are installed afresh when it is back, so their
        next reading counts from 0. (What it saw still counts: its conntrack stays.)"""
        for key in [k for k in self.read if k[0] == dpid]:
            del self.read[key]

    def keep_only(self, vip_ids: set[int]) -> None:
        """After a reload: forget VIPs that no longer pin in conntrack."""
        for vip_id in [v for v in self.due if v not in vip_ids]:
            del self.due[vip_id]
        for counts in (self.seen, self.unread, self.picks):
            for key in [k for k in counts if k[1] not in vip_ids]:
                del counts[key]
        for key in [k for k in self.read if k[1] not in vip_ids]:
            del self.read[key]
