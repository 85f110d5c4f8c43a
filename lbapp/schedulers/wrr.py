"""wrr: weighted round robin (IPVS ``wrr``).

Uses the "smooth" variant (as nginx does): over one cycle of sum(weights) picks each backend
gets exactly its weight, and picks of a heavy backend are spread out instead of bunched.
"""
from __future__ import annotations

from typing import Mapping

from lbapp.schedulers.base import IPv4, ConnKey, Scheduler
from lbapp.schedulers.registry import register


@register
class WeightedRoundRobin(Scheduler):
    """IPVS ``wrr``, smooth; keeps each backend's running credit (``_current``) between picks."""

    name = "wrr"

    def explain(self, key: ConnKey, active: Mapping[IPv4, int]) -> str:
        return "weighted round robin: the next in the smooth weighted turn (" + \
            ", ".join(f"{b.ip} weight {b.weight}" for b in self.eligible) + ")"

    def rebuild(self) -> None:
        kept = getattr(self, "_current", {})
        self._current = {b.ip: kept.get(b.ip, 0) for b in self.backends}

    def pick(self, key: ConnKey, active: Mapping[IPv4, int], now: float = 0.0) -> IPv4 | None:
        eligible = self.eligible
        if not eligible:
            return None
        total = sum(b.weight for b in eligible)
        for b in eligible:
            self._current[b.ip] += b.weight
        best = max(eligible, key=lambda b: self._current[b.ip])
        self._current[best.ip] -= total
        return best.ip
