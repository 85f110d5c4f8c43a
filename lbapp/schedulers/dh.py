"""dh: destination hashing: a static weighted bucket table keyed on the destination IP
(IPVS ``dh``). Behind one VIP every connection has the same destination: dh pins a VIP to one
backend, which is what it is for (cache clusters keyed by destination)."""
from __future__ import annotations

from typing import Mapping

from lbapp.schedulers.base import IPv4, ConnKey, Scheduler, key_hash, weighted_buckets, bucket_of
from lbapp.schedulers.registry import register


@register
class DestinationHashing(Scheduler):
    name = "dh"
    pick_moves_state = False

    def explain(self, key: ConnKey, active: Mapping[IPv4, int]) -> str:
        if not self.table:
            return "destination hashing: no backend with weight > 0"
        return (f"destination hashing: the hash of the destination {key.dst_ip} is bucket "
                f"{bucket_of(key, 'dst_ip', len(self.table))} of {len(self.table)}")

    def rebuild(self) -> None:
        self.table = weighted_buckets(self.backends)

    def pick(self, key: ConnKey, active: Mapping[IPv4, int], now: float = 0.0) -> IPv4 | None:
        return self.table[key_hash(key, "dst_ip") % len(self.table)] if self.table else None
