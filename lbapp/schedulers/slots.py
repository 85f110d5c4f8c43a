"""The slot table behind switch-side selection (``selection: switch``).

The switch hashes each new connection's five-tuple (OVS: a select group's ``dp_hash``) into one
of ``SLOTS`` slots; the controller decides which backend owns each slot. Shares follow the
weights (largest remainder), and a change moves only the slots it must: those of a backend that
left or was drained, and the fewest a backend over its new share gives up to the others. So,
as with Maglev, a connection keeps its backend unless its slot had to move.
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

from lbapp.schedulers.base import IPv4, BackendWeight

# OVS maps dp_hash onto at most 256 values per group; 256 buckets of weight 1 give one slot each.
SLOTS = 256

Slots = list[IPv4 | None]


class SlotTable(list):
    """A slot table that remembers the shares it was assigned for (address as an int, slots): a
    reload that finds the same shares keeps it without counting its slots again (counting 256
    slots of each of 10,000 VIPs was a second of a reload). Never changed in place."""

    __slots__ = ("shares",)

    def __init__(self, slots: Sequence[IPv4 | None] = (), shares: tuple[tuple[int, int], ...] = ()) -> None:
        super().__init__(slots)
        self.shares = shares


def quotas(backends: Sequence[BackendWeight], slots: int = SLOTS) -> dict[IPv4, int]:
    """Slots per eligible backend, proportional to weight (largest remainder, ties by address).
    Worked out by position (hashing an IPv4Address formats it in hex; its < is Python code)."""
    eligible = [b for b in backends if b.weight > 0]
    total = sum(b.weight for b in eligible)
    if not total:
        return {}
    exact = [slots * b.weight / total for b in eligible]
    share = [int(x) for x in exact]
    left = slots - sum(share)
    for k in sorted(range(len(eligible)), key=lambda k: (share[k] - exact[k], int(eligible[k].ip)))[:left]:
        share[k] += 1
    return {b.ip: n for b, n in zip(eligible, share)}


def assign(backends: Sequence[BackendWeight], previous: Sequence[IPv4 | None] | None = None,
           slots: int = SLOTS) -> Slots:
    """Each slot's backend (None for every slot when no backend is eligible), keeping every
    slot of ``previous`` whose backend is still within its share."""
    share = quotas(backends, slots)
    if not share:
        return [None] * slots
    shares = tuple(sorted((int(ip), n) for ip, n in share.items()))
    if previous is not None and len(previous) == slots and \
            (getattr(previous, "shares", None) == shares or _holds(previous, share)):
        return SlotTable(previous, shares)  # every slot within its backend's share: a reload of 10,000 VIPs keeps each
    # by index into the backends in address order (hashing an IPv4Address formats it in hex:
    # five times per slot made a start with 10,000 VIPs take seconds)
    wanting = sorted(share)
    quota = [share[ip] for ip in wanting]
    held = [0] * len(wanting)
    table: Slots = [None] * slots
    at = {int(ip): k for k, ip in enumerate(wanting)}
    for i, ip in enumerate(previous or ()):
        k = at.get(int(ip)) if ip is not None and i < slots else None
        if k is not None and held[k] < quota[k]:
            table[i] = wanting[k]
            held[k] += 1
    # Free slots go to the backends short of their share, taking turns so that no backend's
    # new slots bunch together.
    turn, n = 0, len(wanting)
    for i in range(slots):
        if table[i] is not None:
            continue
        while held[turn % n] >= quota[turn % n]:
            turn += 1
        table[i] = wanting[turn % n]
        held[turn % n] += 1
        turn += 1
    return SlotTable(table, shares)


def refuses(table: Sequence[IPv4 | None]) -> bool:
    """Whether a slot table names no backend (no backend is eligible): :func:`assign` fills
    every slot or none, so the first tells (``None in table`` compared 256 addresses)."""
    return not table or table[0] is None


def _holds(previous: Sequence[IPv4 | None], share: dict[IPv4, int]) -> bool:
    """Whether ``previous`` gives each backend exactly its share (counted by address as an
    int: hashing an IPv4Address formats it in hex, 256 times per VIP)."""
    try:
        return Counter(map(int, previous)) == {int(ip): n for ip, n in share.items()}
    except TypeError:  # an empty slot
        return False


def moved(before: Sequence[IPv4 | None], after: Sequence[IPv4 | None]) -> int:
    """How many slots changed backend."""
    return sum(1 for a, b in zip(before, after) if a != b)
