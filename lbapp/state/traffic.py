"""Bytes and packets per (VIP, backend): what ended sessions carried (their flow-removed says)
plus what the live flows have carried, from the last complete reading of the session tables
(a session's flow, and a ``selection: switch`` VIP's pin flow per backend). A session that
ends leaves the reading, so nothing is counted twice. Readings are taken only while someone
watches (the API's state or /metrics was asked for lately): an unwatched controller reads no
statistics for this. Pure, time passed in."""
from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

from lbapp.shared import VipIdBackend

READ_EVERY_S = 5.0  # a reading of every balancer's session table at most this often
WATCHED_FOR_S = 30.0  # after a look at the state, readings go on this long


@dataclass
class Traffic:
    """Owns the byte and packet totals per (VIP id, backend) and the last reading of the live
    flows. Changed only by lbapp.handlers.readings.Readings (readings, ended sessions)."""

    # (bytes, packets) per pair: of ended sessions; of the last reading, summed per pair (kept up to
    # date, so a look costs two lookups: hashing a pair hashes its address, the cost of a scrape)
    ended: dict[VipIdBackend, tuple[int, int]] = field(default_factory=dict)
    live: dict[VipIdBackend, tuple[int, int]] = field(default_factory=dict)
    # the last reading: a session's key (its id, or lbapp.handlers.readings.EpochCopy) -> (pair, B, P)
    sessions: dict[Hashable, tuple[VipIdBackend, int, int]] = field(default_factory=dict)
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
            _add(self.live, last[0], -last[1], -last[2])
        _add(self.ended, pair, byte_count, packet_count)
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
        self.live = {}
        for pair, byte_count, packet_count in self.sessions.values():
            _add(self.live, pair, byte_count, packet_count)
        for pair, (byte_count, packet_count) in pins.items():
            _add(self.live, pair, byte_count, packet_count)

    def total(self, pair: VipIdBackend) -> tuple[int, int]:
        """(bytes, packets) of ``pair`` so far."""
        ended, live = self.ended.get(pair, _NOTHING), self.live.get(pair, _NOTHING)
        return (ended[0] + live[0], ended[1] + live[1])


_NOTHING = (0, 0)


def _add(totals: dict[VipIdBackend, tuple[int, int]], pair: VipIdBackend, byte_count: int, packet_count: int) -> None:
    was = totals.get(pair, _NOTHING)
    totals[pair] = (was[0] + byte_count, was[1] + packet_count)
