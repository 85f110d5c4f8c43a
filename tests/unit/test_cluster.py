"""The lead as one member's clock sees it (lbapp.cluster.leadership), and the role requests."""
from os_ken.ofproto import ofproto_v1_3 as ofp

from lbapp.cluster.leadership import TRUSTED_SHARE, Leadership
from lbapp.cluster.roles import is_stale, role_request


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
