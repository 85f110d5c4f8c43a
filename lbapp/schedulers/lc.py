"""lc: least connection: the backend with the fewest live sessions (IPVS ``lc``)."""
from __future__ import annotations

from typing import Mapping

from lbapp.schedulers.base import IPv4, ConnKey, Scheduler, least
from lbapp.schedulers.registry import register


@register
class LeastConnection(Scheduler):
    name = "lc"

    def pick(self, key: ConnKey, active: Mapping[IPv4, int], now: float = 0.0) -> IPv4 | None:
        return least(self.eligible, lambda b: active.get(b.ip, 0))
