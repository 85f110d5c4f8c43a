"""The picks of ``pin: conntrack`` connections, remembered by the controller while the switch's
pins may live: a switch that lost its conntrack (ovs-vswitchd restarted, a flush) sends each
connection's next packet up as a new one, and the controller pins it again to the backend it
had instead of picking afresh (a fresh pick by a scheduler that does not hash resets it).
Pure, time passed in."""
from __future__ import annotations

from lbapp.shared import ConnKey, IPv4

# as long as the conntrack zone policy keeps an idle pin (lbapp.ctzone.DEFAULT_PIN_SECONDS)
REMEMBER_S = 600.0
MAX_REMEMBERED = 1_000_000  # about 250 bytes each: a flood of picks costs at most ~250 MB


class PinMemory:
    """Owns the remembered picks: connection -> (backend, remembered until), oldest first.
    Changed by lbapp.handlers.connections (a pick, a pin again) and the Balancer's tick (expiry)."""

    def __init__(self, remember_s: float = REMEMBER_S, limit: int = MAX_REMEMBERED) -> None:
        self.remember_s, self.limit = remember_s, limit
        self._picks: dict[ConnKey, tuple[IPv4, float]] = {}

    def __len__(self) -> int:
        return len(self._picks)

    def remember(self, key: ConnKey, backend: IPv4, now: float) -> None:
        """``key`` was pinned to ``backend`` at ``now`` (kept ``remember_s`` from now)."""
        picks = self._picks
        picks.pop(key, None)  # to the end: the dict stays in expiry order
        picks[key] = (backend, now + self.remember_s)
        if len(picks) > self.limit:
            del picks[next(iter(picks))]  # the oldest goes first

    def recall(self, key: ConnKey, now: float) -> IPv4 | None:
        found = self._picks.get(key)
        return found[0] if found is not None and found[1] > now else None

    def expire(self, now: float) -> int:
        """Forget the picks remembered long enough; how many."""
        picks, gone = self._picks, 0
        for key, (_, until) in list(picks.items()):
            if until > now:
                break
            del picks[key]
            gone += 1
        return gone
