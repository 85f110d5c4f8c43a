"""sh: source hashing: a static weighted bucket table keyed on the source IP, or on the whole
5-tuple with ``hash: five_tuple`` (IPVS ``sh``; its sh-port flag)."""
from __future__ import annotations

from typing import Mapping

from lbapp.schedulers.base import IPv4, ConnKey, Scheduler, key_hash, weighted_buckets
from lbapp.schedulers.registry import register


@register
class SourceHashing(Scheduler):
    name = "sh"

    def rebuild(self) -> None:
        self.table = weighted_buckets(self.backends)

    def pick(self, key: ConnKey, active: Mapping[IPv4, int], now: float = 0.0) -> IPv4 | None:
        return self.table[key_hash(key, self.options.hash_fields) % len(self.table)] if self.table else None
