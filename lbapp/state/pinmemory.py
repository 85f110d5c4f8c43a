"""The picks of ``pin: conntrack`` connections, remembered by the controller while the switch's
pins may live: a switch that lost its conntrack (ovs-vswitchd restarted, a flush) sends each
connection's next packet up as a new one, and the controller pins it again to the backend it
had instead of picking afresh (a fresh pick by a scheduler that does not hash resets it).
Pure, time passed in."""
from __future__ import annotations

from collections import deque

from lbapp.shared import PIN_SECONDS, ConnKey, IPv4

REMEMBER_S = float(PIN_SECONDS)  # as long as the zone policy keeps an idle pin
MAX_REMEMBERED = 250_000  # ~425 bytes each (measured): a flood of picks costs at most ~110 MB


class PinMemory:
    """Owns the remembered picks: connection -> (backend, remembered until), and their expiry
    order. Changed by lbapp.handlers.connections (a pick, a pin again) and the Balancer's tick
    (expiry). Every operation is O(1) (amortised): it runs on the per-connection path."""

    def __init__(self, remember_s: float = REMEMBER_S, limit: int = MAX_REMEMBERED) -> None:
        self.remember_s, self.limit = remember_s, limit
        self._picks: dict[ConnKey, tuple[IPv4, float]] = {}
        # (until, key) in the order remembered; an entry whose pick was remembered again since
        # is stale (its until no longer matches) and is skipped
        self._order: deque[tuple[float, ConnKey]] = deque()

    def __len__(self) -> int:
        return len(self._picks)

    def remember(self, key: ConnKey, backend: IPv4, now: float, seconds: float | None = None) -> None:
        """``key`` was pinned to ``backend`` at ``now`` (kept ``seconds``, else ``remember_s``, from now)."""
        until = now + (self.remember_s if seconds is None else seconds)
        self._picks[key] = (backend, until)
        self._order.append((until, key))
        while len(self._picks) > self.limit:  # the oldest goes first
            self._drop_oldest()

    def recall(self, key: ConnKey, now: float) -> IPv4 | None:
        found = self._picks.get(key)
        return found[0] if found is not None and found[1] > now else None

    def expire(self, now: float) -> int:
        """Forget the picks remembered long enough; how many."""
        gone = 0
        while self._order and self._order[0][0] <= now:
            gone += self._drop_oldest()
        return gone

    def _drop_oldest(self) -> int:
        until, key = self._order.popleft()
        found = self._picks.get(key)
        if found is not None and found[1] == until:
            del self._picks[key]
            return 1
        return 0
