"""nq: never queue: an idle backend if there is one (first in config order), else shortest
expected delay (IPVS ``nq``)."""
from __future__ import annotations

from typing import Mapping

from lbapp.schedulers.base import IPv4, ConnKey, Scheduler, least
from lbapp.schedulers.registry import register


@register
class NeverQueue(Scheduler):
    name = "nq"

    def pick(self, key: ConnKey, active: Mapping[IPv4, int], now: float = 0.0) -> IPv4 | None:
        eligible = self.eligible
        idle = next((b.ip for b in eligible if active.get(b.ip, 0) == 0), None)
        return idle or least(eligible, lambda b: (active.get(b.ip, 0) + 1) / b.weight)
