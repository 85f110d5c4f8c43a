"""Dynamic feedback (the source's "dynamic feedback" policy, after LVS's feedbackd): from the
bytes each backend's sessions carried, scale the backends' effective weights so a busy backend
receives fewer new connections. Bounded per step and overall; pure, time passed in."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from lbapp.shared import IPv4

LOG = logging.getLogger("lbapp")


@dataclass
class Feedback:
    """Owns the dynamic feedback factors per backend and the last load reading. Held by
    lbapp.state.backends.Backends, and kept over a reload while its settings stay; changed only by
    the Balancer: ``due`` on its tick, ``observe`` when a feedback round's readings are in."""

    interval: float
    max_step: float = 0.25  # a factor moves by at most this fraction per interval
    min_factor: float = 0.25
    max_factor: float = 2.0
    factors: dict[IPv4, float] = field(default_factory=dict)
    _last: tuple[float, dict[IPv4, int]] | None = None
    _next: float = 0.0

    def settings(self) -> tuple[float, float, float, float]:
        return self.interval, self.max_step, self.min_factor, self.max_factor

    def due(self, now: float) -> bool:
        if now < self._next:
            return False
        self._next = now + self.interval
        return True

    def observe(self, now: float, total_bytes: dict[IPv4, int], weights: dict[IPv4, int]) -> dict[IPv4, float] | None:
        """``total_bytes``: bytes each backend's sessions have carried so far (live flows plus
        removed ones). Returns the new factors when any changed, else None."""
        last, self._last = self._last, (now, dict(total_bytes))
        if last is None or now <= last[0]:
            return None
        elapsed = now - last[0]
        # load per unit of configured weight: what a fair share would equalise
        load = {ip: max(total_bytes.get(ip, 0) - last[1].get(ip, 0), 0) / elapsed / w
                for ip, w in weights.items() if w > 0}
        busy = [v for v in load.values() if v > 0]
        if not busy:
            return None
        mean = sum(load.values()) / len(load)
        changed = {}
        for ip, value in load.items():
            old = self.factors.get(ip, 1.0)
            target = mean / value if value > 0 else self.max_factor
            step = min(max(target / old, 1 - self.max_step), 1 + self.max_step)
            new = min(max(old * step, self.min_factor), self.max_factor)
            if abs(new - old) > 1e-3:
                changed[ip] = new
                self.factors[ip] = new
        if changed:
            LOG.info("feedback: %s", ", ".join(f"{ip} load {load[ip]:.0f} B/s/weight -> factor {f:.2f}"
                                               for ip, f in sorted(changed.items())))
        return changed or None

    def effective(self, ip: IPv4, weight: int) -> int:
        """The weight a scheduler uses: configured weight x factor, in hundredths (a backend
        with weight > 0 never falls to 0: draining stays the operator's decision)."""
        if weight <= 0:
            return 0
        return max(1, round(weight * 100 * self.factors.get(ip, 1.0)))
