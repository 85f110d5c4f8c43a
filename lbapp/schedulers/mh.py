"""mh: Maglev consistent hashing (Eisenbud et al., NSDI 2016; IPVS ``mh``).

Each backend has a permutation of the M table slots (offset and skip from two hashes of its
address); backends take turns claiming their next free slot, ``weight / gcd(weights)`` turns
per round, until the table is full. A connection hashes (source IP, or the 5-tuple) to a slot.
Removing one of N backends moves about 1/N of keys beyond those it held.
"""
from __future__ import annotations

import hashlib
from math import gcd
from functools import reduce

from lbapp.schedulers.base import IPv4, BackendWeight, TableHashing
from lbapp.schedulers.registry import register


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    f = 2
    while f * f <= n:
        if n % f == 0:
            return False
        f += 1
    return True


def _h(ip: IPv4, salt: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(ip.packed, digest_size=8, salt=salt).digest(), "big")


def build_table(backends: list[BackendWeight], size: int) -> list[IPv4]:
    eligible = [b for b in backends if b.weight > 0]
    if not eligible:
        return []
    if not is_prime(size):
        raise ValueError(f"Maglev table size {size} is not prime")
    g = reduce(gcd, (b.weight for b in eligible))
    turns = [b.weight // g for b in eligible]
    # Huge or coprime weights (dynamic feedback scales them) would let the first backends fill
    # the table in one round: keep a round well under the table size, in proportion.
    budget = max(len(eligible), size // 10)
    if sum(turns) > budget:
        scale = budget / sum(turns)
        turns = [max(1, round(t * scale)) for t in turns]
    offset = [_h(b.ip, b"offset") % size for b in eligible]
    skip = [_h(b.ip, b"skip") % (size - 1) + 1 for b in eligible]
    nxt = [0] * len(eligible)
    table: list[int] = [-1] * size
    filled = 0
    while True:
        for i in range(len(eligible)):
            for _ in range(turns[i]):
                c = (offset[i] + nxt[i] * skip[i]) % size
                while table[c] >= 0:
                    nxt[i] += 1
                    c = (offset[i] + nxt[i] * skip[i]) % size
                table[c] = i
                nxt[i] += 1
                filled += 1
                if filled == size:
                    return [eligible[i].ip for i in table]


@register
class Maglev(TableHashing):
    """IPVS ``mh``: a Maglev lookup table at the hash of the source IP or five-tuple; no state
    between picks."""

    name = "mh"
    policy = "Maglev hashing"
    entry = "entry"

    def rebuild(self) -> None:
        self.table = build_table(self.backends, self.options.table_size)
