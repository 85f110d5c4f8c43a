"""The scheduler interface the balancer calls for every new connection, and the pieces the
policies share (eligibility, least-load choice, key hashing, a weighted bucket table)."""
from __future__ import annotations

import copy
import hashlib
import heapq
from collections import Counter
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, ClassVar, Literal, Mapping, Sequence

from lbapp.shared import ConnKey, IPv4  # noqa: F401  (ConnKey: part of the scheduler interface)

HashFields = Literal["src_ip", "five_tuple"]


@dataclass(frozen=True)
class BackendWeight:
    """A backend and the weight new connections are shared by (its effective weight)."""

    ip: IPv4
    weight: int


@dataclass(frozen=True)
class SchedulerOptions:
    """A VIP's scheduler settings; a reload keeps the VIP's scheduler only while they are unchanged."""

    hash_fields: HashFields = "src_ip"  # what sh and mh hash (dh always hashes the destination)
    table_size: int = 65537  # Maglev lookup table size M (a prime)


class Scheduler(ABC):
    """Chooses a backend. Deterministic for a given sequence of calls; holds no clock (``now``
    comes in with each call).

    ``active`` maps each backend to its live connection count, for the connection-aware
    policies; ``pick`` returns None when no backend can take a connection (all weights 0).
    A backend with weight 0 is drained: it gets no new connections, its sessions run on.
    """

    name: ClassVar[str]
    # whether ``pick`` moves the policy's own state (a round-robin turn, locality's sets):
    # then :meth:`predict` asks a copy
    pick_moves_state: ClassVar[bool] = True

    def __init__(self, backends: Sequence[BackendWeight], options: SchedulerOptions = SchedulerOptions()) -> None:
        self.options = options
        self.backends: list[BackendWeight] = []
        self.set_backends(backends)

    @abstractmethod
    def pick(self, key: ConnKey, active: Mapping[IPv4, int], now: float = 0.0) -> IPv4 | None:
        """The backend for the new connection ``key``."""

    def predict(self, key: ConnKey, active: Mapping[IPv4, int], now: float = 0.0) -> tuple[IPv4 | None, str]:
        """The backend :meth:`pick` would choose for ``key`` now, and why, changing nothing (for
        ``lbapp trace``)."""
        counts = dict(active)  # a plain copy: a least-load tracker then keeps no hold on the live counts
        scheduler = copy.deepcopy(self) if self.pick_moves_state else self
        return scheduler.pick(key, counts, now), self.explain(key, counts)

    def explain(self, key: ConnKey, active: Mapping[IPv4, int]) -> str:
        """What the policy decides by, for this connection and these live counts."""
        return f"{self.name}: {type(self).__doc__ or 'its own rule'}".strip()

    def set_backends(self, backends: Sequence[BackendWeight]) -> None:
        """Replace the backend set (weights changed, backend added, drained or removed)."""
        self.backends = list(backends)
        self._eligible = [b for b in self.backends if b.weight > 0]  # per pick otherwise: O(N) for rr
        self.eligible_by_ip = {b.ip: b for b in self._eligible}
        self.rebuild()

    def rebuild(self) -> None:
        """Recompute derived state (hash tables) after the backend set changed."""

    @property
    def eligible(self) -> list[BackendWeight]:
        return self._eligible


def least(candidates: Sequence[BackendWeight], cost: Callable[[BackendWeight], float]) -> IPv4 | None:
    """The candidate with the smallest cost; ties go to the first in config order. (IPVS
    compares its fractions by cross-multiplication; with connection counts and weights far
    below 2**53 a float division orders them the same, and ``min`` keeps the scan in C.)"""
    return min(candidates, key=cost).ip if candidates else None


class LiveCounts(Counter):
    """Live sessions per backend that remember which backends changed since a scheduler last
    looked (``changed``), so a least-load policy need not rescan every backend per pick."""

    def __init__(self, *args, **kwargs) -> None:
        self.changed: set = set()
        super().__init__(*args, **kwargs)

    def __setitem__(self, key, value) -> None:
        self.changed.add(key)
        super().__setitem__(key, value)

    def __delitem__(self, key) -> None:
        self.changed.add(key)
        super().__delitem__(key)


class LeastTracker:
    """The eligible backend with the smallest ``cost(backend, sessions)``, ties to the first in
    config order, as :func:`least` finds it, but kept in a heap updated only for the backends
    whose count changed: O(log N) per pick instead of a scan of all N. Stale heap entries are
    dropped when they surface. Falls back to the scan for counts that do not track changes."""

    def __init__(self, cost: Callable[[BackendWeight, int], float | tuple]) -> None:
        # a scheduler makes a new tracker whenever its backends or weights change
        self.cost = cost
        self._counts: LiveCounts | None = None
        self._heap: list[tuple] = []

    def __len__(self) -> int:
        """Entries held: bounded, since a pick that finds the heap too stale rebuilds it."""
        return len(self._heap)

    def pick(self, eligible: Sequence[BackendWeight], active: Mapping[IPv4, int]) -> IPv4 | None:
        if not isinstance(active, LiveCounts):
            return least(eligible, lambda b: self.cost(b, active.get(b.ip, 0)))
        if active is not self._counts or len(self._heap) > 4 * len(eligible) + 64:
            self._counts = active
            self._order = {b.ip: (i, b) for i, b in enumerate(eligible)}
            self._heap = [(self.cost(b, active.get(b.ip, 0)), i, b.ip) for i, b in enumerate(eligible)]
            heapq.heapify(self._heap)
        else:
            for ip in active.changed:
                if ip in self._order:
                    i, b = self._order[ip]
                    heapq.heappush(self._heap, (self.cost(b, active.get(ip, 0)), i, ip))
        active.changed.clear()
        heap = self._heap
        while heap:
            cost, i, ip = heap[0]
            if cost == self.cost(self._order[ip][1], active.get(ip, 0)):
                return ip
            heapq.heappop(heap)  # an entry from before the backend's count last changed
        return None


def loads(backends: Sequence[BackendWeight], active: Mapping[IPv4, int]) -> str:
    """Each backend's live sessions and weight, as a least-load policy weighs them."""
    return ", ".join(f"{b.ip} {active.get(b.ip, 0)}/{b.weight}" for b in backends) or "no backend with weight > 0"


def hashed_fields(key: ConnKey, fields: str) -> str:
    """The fields a hashing policy hashes, named, with this connection's values."""
    if fields == "src_ip":
        return f"source address {key.src_ip}"
    if fields == "dst_ip":
        return f"destination {key.dst_ip}"
    return f"five-tuple {key.src_ip}:{key.src_port} -> {key.dst_ip}:{key.dst_port} (protocol {key.protocol})"


def bucket_of(key: ConnKey, fields: str, size: int) -> int:
    """The table entry a hashing policy reads for ``key``."""
    return key_hash(key, fields) % size


def wlc_cost(active: Mapping[IPv4, int]) -> Callable[[BackendWeight], float]:
    return lambda b: active.get(b.ip, 0) / b.weight


def key_hash(key: ConnKey, fields: str) -> int:
    """A stable 64-bit hash of the connection fields a policy keys on."""
    if fields == "src_ip":
        data = key.src_ip.packed
    elif fields == "dst_ip":
        data = key.dst_ip.packed
    elif fields == "five_tuple":
        data = (key.src_ip.packed + key.dst_ip.packed + key.src_port.to_bytes(2, "big")
                + key.dst_port.to_bytes(2, "big") + bytes([key.protocol]))
    else:
        raise ValueError(f"unknown hash fields {fields!r}")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def weighted_buckets(backends: Sequence[BackendWeight], size: int = 256) -> list[IPv4]:
    """A table of ``size`` buckets, each backend holding a share proportional to its weight,
    interleaved (as IPVS sh/dh fill their 256-bucket tables)."""
    eligible = [b for b in backends if b.weight > 0]
    if not eligible:
        return []
    total = sum(b.weight for b in eligible)
    table: list[IPv4] = []
    credit = {b.ip: 0 for b in eligible}
    for _ in range(size):  # smooth weighted round robin over the buckets
        for b in eligible:
            credit[b.ip] += b.weight
        best = max(eligible, key=lambda b: credit[b.ip])
        credit[best.ip] -= total
        table.append(best.ip)
    return table


class TableHashing(Scheduler):
    """A policy that reads a table built from the weights (``rebuild``) at the hash of the
    connection's fields: sh, dh, mh. Picking moves nothing."""

    policy: ClassVar[str]  # what the policy is called in an explanation
    entry: ClassVar[str] = "bucket"  # and what its table holds
    pick_moves_state = False
    table: list[IPv4]

    def hashed(self) -> str:
        """The connection fields hashed (``key_hash``'s names)."""
        return self.options.hash_fields

    def pick(self, key: ConnKey, active: Mapping[IPv4, int], now: float = 0.0) -> IPv4 | None:
        table = self.table
        return table[bucket_of(key, self.hashed(), len(table))] if table else None

    def explain(self, key: ConnKey, active: Mapping[IPv4, int]) -> str:
        if not self.table:
            return f"{self.policy}: no backend with weight > 0"
        fields = self.hashed()
        return (f"{self.policy}: the hash of the {hashed_fields(key, fields)} is {self.entry} "
                f"{bucket_of(key, fields, len(self.table))} of {len(self.table)}")
