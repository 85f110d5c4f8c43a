"""How long the controller took to set up new connections: from a packet-in's arrival at the
controller to its replies written to the switch's connection. A fixed-bucket
histogram (Prometheus' shape: upper bounds, cumulative counts, sum), cheap enough for the
per-connection path: one bisect and two additions per connection."""
from __future__ import annotations

from bisect import bisect_left
from typing import Any

# upper bounds in seconds: a lone setup takes tens to hundreds of microseconds; bursts and a
# busy machine push it into milliseconds
BOUNDS_S = (25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1.0)


class LatencyHistogram:
    """Owns the bucket counts and sum of connection setup times. The Balancer holds it
    (``setup_latency``), but only lbapp.sender.Sender changes it, calling ``observe`` under the
    app's lock; the snapshot reads it."""

    def __init__(self, bounds: tuple[float, ...] = BOUNDS_S) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)

    def quantile(self, q: float) -> float | None:
        """The upper bound of the bucket holding quantile ``q`` (None: no observation, or above
        every bound)."""
        total, seen = self.count, 0
        if not total:
            return None
        for bound, n in zip(self.bounds, self.counts):
            seen += n
            if seen >= q * total:
                return bound
        return None

    def as_data(self) -> dict[str, Any]:
        """Cumulative counts per upper bound, as Prometheus' ``le`` buckets, plus sum and count."""
        cumulative, running = [], 0
        for bound, n in zip(self.bounds, self.counts):
            running += n
            cumulative.append([bound, running])
        return {"buckets": cumulative, "count": self.count, "sum": round(self.sum, 6),
                "p50_at_most": self.quantile(0.5), "p99_at_most": self.quantile(0.99)}
