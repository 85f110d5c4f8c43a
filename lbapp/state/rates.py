"""Per-second rates of the controller's counters (connections per (VIP, backend), packet-ins),
as ``ipvsadm --rate`` shows them: the change over the last completed sampling interval. Sampled
on the tick, so the per-connection path does nothing for it. Pure, time passed in."""
from __future__ import annotations

from collections import Counter
from collections.abc import Hashable

SAMPLE_EVERY_S = 1.0
PACKET_INS = "packet_ins"  # the key of the packet-in count, beside the (VIP id, backend) pairs


class Rates:
    """Owns the last two samples of the controller's counters. Changed only by the Balancer, which
    samples on its tick; lbapp.handlers.picking and the snapshot read ``per_second``."""

    def __init__(self) -> None:
        self._previous: tuple[float, Counter] | None = None
        self._current: tuple[float, Counter] | None = None

    def due(self, now: float) -> bool:
        return self._current is None or now - self._current[0] >= SAMPLE_EVERY_S or now < self._current[0]

    def sample(self, now: float, counters: Counter) -> None:
        """Keep the counters' values at ``now`` (the caller hands ``counters`` over: a copy of
        its own); the sample before becomes the baseline."""
        self._previous, self._current = self._current, (now, counters)

    def per_second(self, key: Hashable) -> float:
        """How fast ``key`` grew over the last interval; 0 until two samples were taken."""
        if self._previous is None or self._current is None:
            return 0.0
        (t0, before), (t1, after) = self._previous, self._current
        if t1 <= t0:
            return 0.0
        return max(after[key] - before[key], 0) / (t1 - t0)


def followed(total: Counter, packet_ins: int) -> Counter:
    """What the rates follow: connections per (VIP id, backend) (``total``: ever made) and per
    VIP id, and packet-ins."""
    counts = Counter(total)
    for (vip_id, _), n in total.items():
        counts[vip_id] += n
    counts[PACKET_INS] = packet_ins
    return counts
