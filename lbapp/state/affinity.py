"""The controller's copy of the persistence entries it installed (lbapp.pipeline.affinity): a
client's next connection can reach the controller before the switch's entry reaches its
datapath (OVS revalidates its cached flows after a table change, not at once), and must still go
where the first went. The switch's entries stay the truth: after a restart this copy is empty
and the entries the switch hands up (its punted frames carry their backend) carry on."""
from __future__ import annotations

from lbapp.shared import IPv4
from lbapp.state.pinmemory import PinMemory

MAX_ENTRIES = 250_000  # a flood of clients from forged addresses evicts the oldest, costs no more


class AffinityMemory(PinMemory):
    """(persistence id, client prefix) -> backend, each for its persistence timeout; owned by
    the Balancer. What is due to go goes as new entries come (no tick needed): O(1) amortised."""

    def __init__(self, limit: int = MAX_ENTRIES) -> None:
        super().__init__(0.0, limit)

    def keep(self, persistence_id: int, prefix: IPv4, backend: IPv4, now: float, seconds: float) -> None:
        self.expire(now)
        self.remember((persistence_id, prefix), backend, now, seconds)

    def named(self, persistence_id: int, prefix: IPv4, now: float) -> IPv4 | None:
        return self.recall((persistence_id, prefix), now)
