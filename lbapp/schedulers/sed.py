"""sed: shortest expected delay: the smallest (sessions + 1) / weight (IPVS ``sed``)."""
from __future__ import annotations

from typing import Mapping

from lbapp.schedulers.base import IPv4, ConnKey, Scheduler, least
from lbapp.schedulers.registry import register


@register
class ShortestExpectedDelay(Scheduler):
    name = "sed"

    def pick(self, key: ConnKey, active: Mapping[IPv4, int], now: float = 0.0) -> IPv4 | None:
        return least(self.eligible, lambda b: (active.get(b.ip, 0) + 1) / b.weight)
