"""Client persistence through a change of leader (issue 26): two controllers on a real etcd and
the cross_vlan lab with persistent VIPs. The leader is killed; the new one starts with an empty
copy of the entries, and every client still reaches the backend it had, where the controller
picks (the switch hands it the entry's backend) and where the switch picks."""
from __future__ import annotations

import pytest

from lbapp.lab import wait_for
from lbapp.labfailover import stop_leader
from tests.helpers.asker import backends_reached
from tests.mininet.test_persistence import CLIENTS, VIP, persistent_lab

LEASE = 2


@pytest.fixture(scope="module")
def cluster_lab(tmp_path_factory):
    yield from persistent_lab(tmp_path_factory, "persistence_cluster", controllers=2, lease=LEASE)


def test_every_client_keeps_its_backend_when_the_leader_is_killed(cluster_lab):
    lab, clients = cluster_lab, CLIENTS[:6]
    wait_for(lambda: backends_reached(lab, VIP, clients[:1])[0], 20, "web to answer")
    before = {c: backends_reached(lab, VIP, [c] * 5) for c in clients}
    fast_before = {c: backends_reached(lab, VIP, [c] * 5, 7002, "line") for c in clients}
    for seen in (*before.values(), *fast_before.values()):
        assert None not in seen and len(set(seen)) == 1, seen
    handover = stop_leader(lab.members, "kill -9", LEASE)  # returns once another leads, the old one back
    assert handover.new != handover.old
    after = {c: backends_reached(lab, VIP, [c] * 5) for c in clients}
    fast_after = {c: backends_reached(lab, VIP, [c] * 5, 7002, "line") for c in clients}
    assert after == {c: [before[c][0]] * 5 for c in clients}
    assert fast_after == {c: [fast_before[c][0]] * 5 for c in clients}
