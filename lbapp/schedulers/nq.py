"""nq: never queue: an idle backend if there is one (first in config order), else shortest
expected delay (IPVS ``nq``)."""
from __future__ import annotations

from typing import Mapping

from lbapp.schedulers.base import IPv4, ConnKey, LeastTracker, Scheduler, loads
from lbapp.schedulers.registry import register


@register
class NeverQueue(Scheduler):
    """IPVS ``nq``: an idle backend, else shortest expected delay; between picks only a heap of the
    counts."""

    name = "nq"
    pick_moves_state = False

    def explain(self, key: ConnKey, active: Mapping[IPv4, int]) -> str:
        return ("never queue: an idle backend first, else the smallest (sessions + 1)/weight "
                f"(sessions/weight: {loads(self.eligible, active)})")

    def rebuild(self) -> None:
        # idle backends first (ties: config order), then the shortest expected delay
        self.tracker = LeastTracker(lambda b, n: (0, 0.0) if n == 0 else (1, (n + 1) / b.weight))

    def pick(self, key: ConnKey, active: Mapping[IPv4, int], now: float = 0.0) -> IPv4 | None:
        return self.tracker.pick(self.eligible, active)
