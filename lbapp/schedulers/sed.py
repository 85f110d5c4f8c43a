"""sed: shortest expected delay: the smallest (sessions + 1) / weight (IPVS ``sed``)."""
from __future__ import annotations

from typing import Mapping

from lbapp.schedulers.base import IPv4, ConnKey, LeastTracker, Scheduler, loads
from lbapp.schedulers.registry import register


@register
class ShortestExpectedDelay(Scheduler):
    """IPVS ``sed``: smallest (sessions + 1)/weight; between picks only a heap of the counts."""

    name = "sed"
    pick_moves_state = False

    def explain(self, key: ConnKey, active: Mapping[IPv4, int]) -> str:
        return f"shortest expected delay, smallest (sessions + 1)/weight (sessions/weight: {loads(self.eligible, active)})"

    def rebuild(self) -> None:
        self.tracker = LeastTracker(lambda b, n: (n + 1) / b.weight)

    def pick(self, key: ConnKey, active: Mapping[IPv4, int], now: float = 0.0) -> IPv4 | None:
        return self.tracker.pick(self.eligible, active)
