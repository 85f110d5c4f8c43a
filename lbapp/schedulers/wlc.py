"""wlc: weighted least connection: the smallest sessions/weight (IPVS ``wlc``)."""
from __future__ import annotations

from typing import Mapping

from lbapp.schedulers.base import IPv4, ConnKey, LeastTracker, Scheduler, loads
from lbapp.schedulers.registry import register


@register
class WeightedLeastConnection(Scheduler):
    """IPVS ``wlc``: smallest sessions/weight; between picks only a heap of the counts."""

    name = "wlc"
    pick_moves_state = False

    def explain(self, key: ConnKey, active: Mapping[IPv4, int]) -> str:
        return f"weighted least connections, smallest sessions/weight ({loads(self.eligible, active)})"

    def rebuild(self) -> None:
        self.tracker = LeastTracker(lambda b, n: n / b.weight)

    def pick(self, key: ConnKey, active: Mapping[IPv4, int], now: float = 0.0) -> IPv4 | None:
        return self.tracker.pick(self.eligible, active)
