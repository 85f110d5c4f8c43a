"""wrr: weighted round robin (IPVS ``wrr``).

Uses the "smooth" variant (as nginx does): over one cycle of sum(weights) picks each backend
gets exactly its weight, and picks of a heavy backend are spread out instead of bunched.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from lbapp.schedulers.base import IPv4, BackendWeight, ConnKey, Scheduler
from lbapp.schedulers.registry import register


@register
class WeightedRoundRobin(Scheduler):
    name = "wrr"

    def __init__(self, backends: Sequence[BackendWeight]) -> None:
        super().__init__(backends)
        self._current: dict[IPv4, int] = {}

    def set_backends(self, backends: Sequence[BackendWeight]) -> None:
        super().set_backends(backends)
        self._current = {ip: v for ip, v in self._current.items() if any(b.ip == ip for b in backends)}

    def pick(self, key: ConnKey, active: Mapping[IPv4, int]) -> IPv4 | None:
        eligible = self.eligible
        if not eligible:
            return None
        total = sum(b.weight for b in eligible)
        for b in eligible:
            self._current[b.ip] = self._current.get(b.ip, 0) + b.weight
        best = max(eligible, key=lambda b: self._current[b.ip])
        self._current[best.ip] -= total
        return best.ip
