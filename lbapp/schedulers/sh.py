"""sh: source hashing: a static weighted bucket table keyed on the source IP, or on the whole
5-tuple with ``hash: five_tuple`` (IPVS ``sh``; its sh-port flag)."""
from __future__ import annotations

from lbapp.schedulers.base import TableHashing, weighted_buckets
from lbapp.schedulers.registry import register


@register
class SourceHashing(TableHashing):
    """IPVS ``sh``: a weighted bucket table at the hash of the source IP or five-tuple; no state
    between picks."""

    name = "sh"
    policy = "source hashing"

    def rebuild(self) -> None:
        self.table = weighted_buckets(self.backends)
