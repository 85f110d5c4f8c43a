"""sh: source hashing: a static weighted bucket table keyed on the source IP, or on the whole
5-tuple with ``hash: five_tuple`` (IPVS ``sh``; its sh-port flag)."""
from __future__ import annotations

from typing import Mapping

from lbapp.schedulers.base import IPv4, ConnKey, Scheduler, key_hash, weighted_buckets, bucket_of, hashed_fields
from lbapp.schedulers.registry import register


@register
class SourceHashing(Scheduler):
    name = "sh"
    pick_moves_state = False

    def explain(self, key: ConnKey, active: Mapping[IPv4, int]) -> str:
        if not self.table:
            return "source hashing: no backend with weight > 0"
        fields = self.options.hash_fields
        return (f"source hashing: the hash of the {hashed_fields(key, fields)} is bucket "
                f"{bucket_of(key, fields, len(self.table))} of {len(self.table)}")

    def rebuild(self) -> None:
        self.table = weighted_buckets(self.backends)

    def pick(self, key: ConnKey, active: Mapping[IPv4, int], now: float = 0.0) -> IPv4 | None:
        return self.table[key_hash(key, self.options.hash_fields) % len(self.table)] if self.table else None
