"""dh: destination hashing: a static weighted bucket table keyed on the destination IP
(IPVS ``dh``). Behind one VIP every connection has the same destination: dh pins a VIP to one
backend, which is what it is for (cache clusters keyed by destination)."""
from __future__ import annotations

from lbapp.schedulers.base import TableHashing, weighted_buckets
from lbapp.schedulers.registry import register


@register
class DestinationHashing(TableHashing):
    """IPVS ``dh``: a weighted bucket table at the hash of the destination IP; no state between
    picks."""

    name = "dh"
    policy = "destination hashing"

    def hashed(self) -> str:
        return "dst_ip"  # always, whatever the VIP's ``hash``

    def rebuild(self) -> None:
        self.table = weighted_buckets(self.backends)
