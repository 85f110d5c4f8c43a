"""Real traffic across VLANs in Mininet: userspace OVS, a Linux router, unmodified backends."""
import re
import subprocess
from collections import Counter

import pytest

from lbapp.lab import MininetLab, UplinkCapture, parse_answer
from tests.helpers.net import have_root_and_ovs


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    why_not = have_root_and_ovs()
    if why_not:
        pytest.skip(f"Mininet tier: {why_not}")
    try:
        import mininet.net  # noqa: F401
    except ImportError:
        pytest.skip("Mininet tier: needs Debian's mininet (scripts/setup.sh)")
    workdir = tmp_path_factory.mktemp("cross_vlan")
    with MininetLab("cross_vlan", workdir) as running:
        try:
            yield running
        finally:
            running.save_state()
            print(f"lab state in {workdir}")


def test_requests_reach_every_backend_with_the_real_client_ip_and_replies_bypass_the_balancer(lab):
    with UplinkCapture("s1-eth1") as cap:  # what the router sends into the balancer switch
        answers = [lab.http_get("h1", "http://117.78.6.19/") for _ in range(9)]
    assert all(answers), answers
    seen = [parse_answer(a) for a in answers]
    # round robin over three backends in two VLANs: 3 connections each
    assert Counter(s["backend"] for s in seen) == {"b1": 3, "b2": 3, "b3": 3}
    # the backend saw the client's own address, and answered on its own address (unmodified server)
    assert {s["client"].split(":")[0] for s in seen} == {"200.1.1.19"}
    assert {s["server"] for s in seen} == {"10.11.12.11:80", "10.11.12.12:80", "10.11.13.13:80"}
    assert cap.by_source["200.1.1.19"] >= 9, "the client's packets did not reach the balancer"
    replies = {ip: cap.by_source[ip] for ip in ("117.78.6.19", "10.11.12.11", "10.11.12.12", "10.11.13.13")}
    assert sum(replies.values()) == 0, f"reply packets crossed the balancer switch: {replies}"


def test_udp_flows_are_balanced_by_weight_with_the_client_ip(lab):
    answers = [lab.udp_ask("h1", "117.78.6.19", 5353) for _ in range(6)]
    assert all(answers), answers
    seen = [parse_answer(a) for a in answers]
    assert Counter(s["backend"] for s in seen) == {"b1": 4, "b3": 2}  # wrr 2:1
    assert {s["client"].split(":")[0] for s in seen} == {"200.1.1.19"}


def test_backend_ports_are_in_their_vlans(lab):
    tags = {port: lab_tag(port) for port in ("s2-eth1", "s2-eth2", "s2-eth3", "s2-eth4", "s2-eth5", "s1-eth1")}
    assert tags == {"s2-eth1": "20", "s2-eth2": "30", "s2-eth3": "20", "s2-eth4": "20", "s2-eth5": "30",
                    "s1-eth1": "10"}


def lab_tag(port):
    return subprocess.run(["ovs-vsctl", "get", "port", port, "tag"], capture_output=True, text=True).stdout.strip()


def test_balancer_counters_show_only_the_forward_direction(lab):
    before = _session_packets(lab)
    answers = [lab.http_get("h1", "http://117.78.6.19/") for _ in range(3)]
    assert all(answers)
    after = _session_packets(lab)
    # each HTTP/1.0 connection sends a handful of client->server packets through the session
    # flows; the replies (as many or more) never show up on the balancer switch
    assert 0 < after - before < 40, (before, after)


def _session_packets(lab) -> int:
    flows = lab.dump_flows("s1", "table=20")
    return sum(int(n) for n in re.findall(r"n_packets=(\d+),.*priority=100", flows))


def test_external_director_reaches_backends_across_vlans(lab):
    answers = [lab.http_get("h1", "http://117.78.6.20:8080/") for _ in range(12)]
    assert all(answers), answers
    seen = [parse_answer(a) for a in answers]
    assert {s["backend"] for s in seen} <= {"b1", "b3"}
    assert len({s["backend"] for s in seen}) == 2, seen  # the director's multipath spreads connections
    assert {s["client"].split(":")[0] for s in seen} == {"200.1.1.19"}
    neigh = lab.net.get("d1").cmd("ip neigh show 10.11.13.13")
    assert "aa:bb:0a:0b:0d:0d" in neigh, neigh  # the director learned the fabricated MAC
