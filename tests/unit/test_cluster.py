"""The lead as one member's clock sees it (lbapp.cluster.leadership), and the role requests."""
import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp

from lbapp.cluster.leadership import TRUSTED_SHARE, Leadership
from lbapp.cluster.roles import is_stale, role_request
from lbapp.handlers import succession


def test_a_leader_trusts_its_lead_only_until_its_lease_may_have_expired():
    lead = Leadership(ttl=3.0)
    assert not lead.leads(0.0)
    lead.won(revision=57, sent_at=10.0)
    assert lead.leads(10.0) and lead.generation == 57
    assert lead.leads(10.0 + 3.0 * TRUSTED_SHARE - 0.01) and not lead.leads(10.0 + 3.0 * TRUSTED_SHARE)
    lead.refreshed(sent_at=11.0)  # counted from when the keep-alive left, not when it came back
    assert lead.leads(11.0 + 3.0 * TRUSTED_SHARE - 0.01)
    # paused for 10 s (SIGSTOP): the first look after it says the lead is gone, before any write
    assert not lead.leads(21.0)
    lead.lost()
    lead.refreshed(sent_at=22.0)  # a late keep-alive answer does not bring a lost lead back
    assert not lead.leads(22.0)


def test_role_requests_carry_the_generation_and_a_stale_refusal_is_told():
    master, slave = role_request(True, 57), role_request(False, 57)
    assert (master.role, master.generation_id) == (ofp.OFPCR_ROLE_MASTER, 57)
    assert (slave.role, slave.generation_id) == (ofp.OFPCR_ROLE_SLAVE, 57)
    assert is_stale(ofp.OFPET_ROLE_REQUEST_FAILED, ofp.OFPRRFC_STALE)
    assert not is_stale(ofp.OFPET_BAD_REQUEST, ofp.OFPRRFC_STALE)


def test_a_new_leader_starts_from_the_findings_the_last_one_shared():
    """A backend the previous leader found down stays out of a new leader's picks from its first
    connection on, instead of taking connections until its checks fail again."""
    import yaml

    from lbapp.config import parse_config
    from lbapp.service import Balancer
    from tests.unit.test_health import ROOT

    doc = yaml.safe_load((ROOT / "topologies" / "worked_example.yaml").read_text())
    doc["vips"][0]["health"] = {"type": "tcp", "interval": 1, "timeout": 0.5, "rise": 2, "fall": 2}
    old, new = Balancer(parse_config(doc)), Balancer(parse_config(doc))
    for state, target in zip(("down", "up", "up"), sorted(old.checker.checks.status, key=lambda t: int(t.backend))):
        old.checker.checks.status[target].state = state
    shared = succession.findings(old.running, old.checker.checks)
    assert shared == {"tcp 10.11.12.11:80": "down", "tcp 10.11.12.12:80": "up", "tcp 10.11.12.13:80": "up"}
    new.inherit(shared, 0.0)
    weights = {b["ip"]: b["effective_weight"] for b in new.snapshot(0.0)["vips"][0]["backends"]}
    assert weights == {"10.11.12.11": 0, "10.11.12.12": 1, "10.11.12.13": 1}
    assert new.inherit(shared, 0.0) == []  # decided already: nothing changes twice


def test_the_failover_measure_counts_failures_in_and_out_of_hand_overs():
    """lbapp.labfailover: the hand-over as new connections see it begins a steady run of
    answers at the first SYN (a lone early answer does not end it); failures are placed by
    their start."""
    from lbapp.labfailover import failed_around, served_after

    fast, retried = (True, 0.01), (True, 1.5)
    starts = [(10.0 + i / 100, *(retried if 12.0 <= 10.0 + i / 100 < 13.0 and i % 7 else fast)) for i in range(500)]
    starts[210] = (12.1, False, 3.0)  # in the hand-over
    starts[450] = (14.5, False, 3.0)  # after it
    assert served_after(starts, 12.0) == 13.0
    assert served_after(starts, 12.0, run=1) == pytest.approx(12.03)  # a lone early answer
    assert failed_around(starts, [(9.0, 13.0)]) == (1, 1)
