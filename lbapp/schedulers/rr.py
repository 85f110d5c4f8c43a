"""rr: round robin over the backends with weight > 0, in config order (IPVS ``rr``)."""
from __future__ import annotations

from typing import Mapping

from lbapp.schedulers.base import IPv4, ConnKey, Scheduler
from lbapp.schedulers.registry import register


@register
class RoundRobin(Scheduler):
    """IPVS ``rr``; keeps whose turn is next (``_next``) between picks."""

    name = "rr"

    def explain(self, key: ConnKey, active: Mapping[IPv4, int]) -> str:
        return f"round robin: the next in turn of the {len(self.eligible)} backends with weight > 0"
    _next = 0

    def pick(self, key: ConnKey, active: Mapping[IPv4, int], now: float = 0.0) -> IPv4 | None:
        eligible = self.eligible
        if not eligible:
            return None
        choice = eligible[self._next % len(eligible)]
        self._next = (self._next + 1) % len(eligible)
        return choice.ip
