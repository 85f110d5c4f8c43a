"""This member's lead, as its own clock sees it. A leader leads only while its lease surely
holds: until ``ttl`` after it *sent* the last request etcd granted or refreshed the lease on
(etcd counts the TTL from when it handled the request, later), less a margin for clock rates.
So a leader paused past its lease (SIGSTOP, a long GC, a VM migration) knows it lost the lead
the moment it runs again, before it writes anything. Pure: time passed in."""
from __future__ import annotations

from dataclasses import dataclass

# of the lease's TTL, how long after a grant or refresh was sent the lead is trusted
TRUSTED_SHARE = 0.8


@dataclass
class Leadership:
    """Owned by lbapp.cluster.member.Member (the only writer); read by the app before it writes
    to a switch."""

    ttl: float  # the lease's time to live, seconds
    leader: bool = False
    generation: int = 0  # etcd's revision when the lead began: the OpenFlow generation id
    trusted_until: float = 0.0  # local clock: from then on the lease may have expired

    def won(self, revision: int, sent_at: float) -> None:
        """The campaign sent at ``sent_at`` won, at etcd revision ``revision``."""
        self.leader, self.generation = True, revision
        self.trusted_until = sent_at + self.ttl * TRUSTED_SHARE

    def refreshed(self, sent_at: float) -> None:
        """A keep-alive sent at ``sent_at`` renewed the lease."""
        if self.leader:
            self.trusted_until = max(self.trusted_until, sent_at + self.ttl * TRUSTED_SHARE)

    def lost(self) -> None:
        self.leader, self.trusted_until = False, 0.0

    def leads(self, now: float) -> bool:
        """Whether this member may write to the switches now."""
        return self.leader and now < self.trusted_until
