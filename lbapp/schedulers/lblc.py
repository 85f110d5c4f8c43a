"""lblc: locality-based least connection (IPVS ``lblc``). Each destination IP keeps the
backend it was given until that backend is overloaded (more sessions than its weight while
another backend is under half its weight); new assignments go by weighted least connection."""
from __future__ import annotations

from typing import Mapping

from lbapp.schedulers.base import IPv4, BackendWeight, ConnKey, Scheduler, least, wlc_cost, loads
from lbapp.schedulers.registry import register


def overloaded(b: BackendWeight, eligible: list[BackendWeight], active: Mapping[IPv4, int]) -> bool:
    """IPVS's test (ip_vs_lblc.c is_overloaded): busier than its weight while some backend is
    below half of its own."""
    return active.get(b.ip, 0) > b.weight and any(active.get(d.ip, 0) * 2 < d.weight for d in eligible)


@register
class LocalityLeastConnection(Scheduler):
    """IPVS ``lblc``; keeps each destination IP's backend (``assigned``) between picks."""

    name = "lblc"

    def explain(self, key: ConnKey, active: Mapping[IPv4, int]) -> str:
        assigned = self.assigned.get(key.dst_ip)
        return (f"locality-based least connections: destination {key.dst_ip} "
                + (f"is assigned to {assigned}, kept unless it is overloaded or gone" if assigned else
                   "has no backend yet") + f"; else the smallest sessions/weight ({loads(self.eligible, active)})")

    def rebuild(self) -> None:
        self.assigned: dict[IPv4, IPv4] = getattr(self, "assigned", {})

    def pick(self, key: ConnKey, active: Mapping[IPv4, int], now: float = 0.0) -> IPv4 | None:
        eligible = self.eligible
        by_ip = self.eligible_by_ip
        current = by_ip.get(self.assigned.get(key.dst_ip))
        if current is not None and not overloaded(current, eligible, active):
            return current.ip
        choice = least(eligible, wlc_cost(active))
        if choice is not None:
            self.assigned[key.dst_ip] = choice
        return choice
