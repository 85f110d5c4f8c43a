"""lc: least connection: the backend with the fewest live sessions (IPVS ``lc``)."""
from __future__ import annotations

from typing import Mapping

from lbapp.schedulers.base import IPv4, ConnKey, LeastTracker, Scheduler, loads
from lbapp.schedulers.registry import register


@register
class LeastConnection(Scheduler):
    """IPVS ``lc``: fewest live sessions; between picks only a heap of the counts (no decision
    state)."""

    name = "lc"
    pick_moves_state = False

    def explain(self, key: ConnKey, active: Mapping[IPv4, int]) -> str:
        return f"least connections, fewest live sessions first (sessions/weight: {loads(self.eligible, active)})"

    def rebuild(self) -> None:
        self.tracker = LeastTracker(lambda b, n: n)

    def pick(self, key: ConnKey, active: Mapping[IPv4, int], now: float = 0.0) -> IPv4 | None:
        return self.tracker.pick(self.eligible, active)
