"""Bytes and packets per (VIP, backend): what ended sessions carried (their flow-removed says)
plus what the live flows have carried, from the last complete reading of the session tables
(a session's flow, and a ``selection: switch`` VIP's pin flow per backend). A session that
ends leaves the reading, so nothing is counted twice. Readings are taken only while someone
watches (the API's state or /metrics was asked for lately): an unwatched controller reads no
statistics for this. Pure, time passed in."""
from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field

from lbapp.shared import VipIdBackend

READ_EVERY_S = 5.0  # a reading of every balancer's session table at most this often
WATCHED_FOR_S = 30.0  # after a look at the state, readings go on this long


@dataclass
class Traffic:
    """Owns the byte and packet totals per (VIP id, backend) and the last reading of the live
    flows. Changed only by lbapp.handlers.readings.Readings (readings, ended sessions)."""

    ended_bytes: Counter[VipIdBackend] = field(default_factory=Counter)
    ended_packets: Counter[VipIdBackend] = field(default_factory=Counter)
    # the last reading: a session's key (its id, or lbapp.handlers.readings.EpochCopy) -> (pair, B, P)
    sessions: dict[Hashable, tuple[VipIdBackend, int, int]] = field(default_factory=dict)
    live_bytes: Counter[VipIdBackend] = field(default_factory=Counter)  # the last reading, summed per pair (kept
    live_packets: Counter[VipIdBackend] = field(default_factory=Counter)  # up to date, so a look costs O(pairs))
    ended_ids: set[Hashable] = field(default_factory=set)  # sessions ended since the last reading
    next_reading: float = 0.0
    watched_until: float = 0.0

    def watched(self, now: float) -> None:
        self.watched_until = now + WATCHED_FOR_S

    def due(self, now: float) -> bool:
        if now >= self.watched_until or now < self.next_reading:
            return False
        self.next_reading = now + READ_EVERY_S
        return True

    def session_ended(self, session_id: Hashable, pair: VipIdBackend, byte_count: int, packet_count: int) -> None:
        """Its flow's final count replaces what the last reading said of it."""
        last = self.sessions.pop(session_id, None)
        if last is not None:
            self.live_bytes[last[0]] -= last[1]
            self.live_packets[last[0]] -= last[2]
        self.ended_bytes[pair] += byte_count
        self.ended_packets[pair] += packet_count
        self.ended_ids.add(session_id)

    def session_gone(self, session_id: Hashable, pair: VipIdBackend) -> None:
        """A session the controller dropped (its flow deleted, or found gone): what the last
        reading said of it is all that will be known, and it stays counted."""
        _, byte_count, packet_count = self.sessions.get(session_id, (pair, 0, 0))
        self.session_ended(session_id, pair, byte_count, packet_count)

    def reading(self, sessions: dict[Hashable, tuple[VipIdBackend, int, int]],
                pins: dict[VipIdBackend, tuple[int, int]]) -> None:
        """A complete reading of the live flows replaces the previous one; a session that ended
        while it was taken (its final count already in) is left out of it."""
        self.sessions = {sid: v for sid, v in sessions.items() if sid not in self.ended_ids}
        self.ended_ids = set()
        self.live_bytes, self.live_packets = Counter(), Counter()
        for pair, byte_count, packet_count in self.sessions.values():
            self.live_bytes[pair] += byte_count
            self.live_packets[pair] += packet_count
        for pair, (byte_count, packet_count) in pins.items():
            self.live_bytes[pair] += byte_count
            self.live_packets[pair] += packet_count

    def totals(self) -> dict[VipIdBackend, tuple[int, int]]:
        """(bytes, packets) of every (VIP, backend) so far."""
        pairs = set(self.ended_bytes) | set(self.live_bytes)
        return {pair: (self.ended_bytes[pair] + self.live_bytes[pair], self.ended_packets[pair]
                       + self.live_packets[pair]) for pair in pairs}
