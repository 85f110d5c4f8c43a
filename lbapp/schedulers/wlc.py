"""wlc: weighted least connection: the smallest sessions/weight (IPVS ``wlc``)."""
from __future__ import annotations

from typing import Mapping

from lbapp.schedulers.base import IPv4, ConnKey, Scheduler, least, wlc_cost
from lbapp.schedulers.registry import register


@register
class WeightedLeastConnection(Scheduler):
    name = "wlc"

    def pick(self, key: ConnKey, active: Mapping[IPv4, int], now: float = 0.0) -> IPv4 | None:
        return least(self.eligible, wlc_cost(active))
