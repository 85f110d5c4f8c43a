"""Real traffic across VLANs in Mininet: userspace OVS, a Linux router, unmodified backends."""
import re
import subprocess
from collections import Counter

import pytest

from lbapp.flows import explain
from lbapp.lab import MininetLab, UplinkCapture, parse_answer, wait_for
from tests.helpers.net import require_tier


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    require_tier("Mininet", mininet=True)
    workdir = tmp_path_factory.mktemp("cross_vlan")
    with MininetLab("cross_vlan", workdir) as running:
        try:
            yield running
        finally:
            running.save_state()
            print(f"lab state in {workdir}")


def test_requests_reach_every_backend_with_the_real_client_ip_and_replies_bypass_the_balancer(lab):
    # what the router sends into the balancer switch, but for health probes' answers to its address
    with UplinkCapture("s1-eth1", ("10.0.0.2",)) as cap:
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


def _first_answer(proc):
    line = proc.stdout.readline()
    assert line.startswith("backend="), line
    return parse_answer(line)


def _answers(proc, timeout=60):
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, [parse_answer(line) for line in out.splitlines() if line.startswith("backend=")]


def test_a_connection_stays_on_its_backend_while_new_ones_rotate(lab):
    long_lived = lab.stream("h1", "117.78.6.19", 7000, 30, 0.1)
    first = _first_answer(long_lived)  # it is up and pinned before the others start
    others = [lab.stream("h1", "117.78.6.19", 7000, 1, 0) for _ in range(6)]
    other_backends = [_answers(p)[1][0]["backend"] for p in others]
    rc, seen = _answers(long_lived)
    assert rc == 0 and len(seen) == 29
    assert {s["backend"] for s in seen} == {first["backend"]}, seen  # pinned for its whole life
    assert len(set(other_backends)) == 3, other_backends  # meanwhile rr kept rotating new connections


def test_switch_picked_connections_are_pinned_past_the_syn_sent_timeout(lab):
    # the lab applies the zone policy once its bridges exist: only then does OVS put it in force
    rc, seen = _answers(lab.stream("h1", "117.78.6.19", 7002, 1, 0))
    assert rc == 0 and len(seen) == 1
    entries = subprocess.run(["ovs-appctl", "dpctl/dump-conntrack", "-s", "zone=27"], capture_output=True,
                             text=True, check=True).stdout
    timeouts = [int(t) for t in re.findall(r"dport=7002\).*timeout=(\d+)", entries)]
    assert timeouts and min(timeouts) > 500, entries  # OVS's default for SYN_SENT is 30 s


def test_idle_sessions_expire_and_the_controller_count_drops(lab):
    for _ in range(3):
        assert lab.udp_ask("h1", "117.78.6.19", 5353)
    udp_sessions = lambda: [s for s in explain(lab.dump_flows("s1"), lab.cfg).sessions if "echo-udp" in s.vip]  # noqa: E731
    assert len(udp_sessions()) >= 3
    # idle_timeout 10 s for the UDP VIP: OVS removes the flows, the controller hears flow-removed
    wait_for(lambda: not udp_sessions(), 30, "the idle UDP session flows to expire")
    live = [int(n) for n in re.findall(r"ended \(idle\).*; (\d+) live", lab.controller_log.read_text())]
    assert live and live[-1] < max(live), live


def test_next_hop_change_mid_connection_keeps_the_connection(lab):
    router = lab.net.get("r0")
    stream = lab.stream("h1", "117.78.6.19", 7000, 40, 0.1)
    first = _first_answer(stream)  # the connection carries data through the old next hop
    router.cmd("ip link set r0-eth1 address aa:bb:cc:dd:ee:fe")
    router.cmd("arping -U -c 2 -I r0-eth1 10.0.0.1")  # the router announces its new MAC
    try:
        rc, seen = _answers(stream)
        assert rc == 0 and len(seen) == 39, "the connection broke when the next hop changed"
        assert {s["backend"] for s in seen} == {first["backend"]}
        table = lab.dump_flows("s1", "table=40")
        assert "aa:bb:cc:dd:ee:fe" in table and "aa:bb:cc:dd:ee:ff" not in table
    finally:
        router.cmd("ip link set r0-eth1 address aa:bb:cc:dd:ee:ff")
        router.cmd("arping -U -c 2 -I r0-eth1 10.0.0.1")
        wait_for(lambda: "aa:bb:cc:dd:ee:ff" in lab.dump_flows("s1", "table=40"), 10, "the original next hop")


def test_lbapp_flows_on_the_live_balancer_shows_sessions_with_idle_time(lab):
    import json
    import sys

    assert lab.http_get("h1", "http://117.78.6.19/")
    out = subprocess.run([sys.executable, "-m", "lbapp.cli.main", "flows", "s1", "-c", str(lab.config), "--json"],
                         capture_output=True, text=True, check=True)
    sessions = json.loads(out.stdout)["sessions"]
    web = [s for s in sessions if s["vip"].startswith("VIP web")]
    assert web and all(s["idle_age"] is not None and s["packets"] > 0 for s in web)
    assert all(s["client"].startswith("200.1.1.19:") for s in web)


def _scrape(lab) -> dict:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families
    with urllib.request.urlopen(f"{lab.api_url}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_scraped_while_traffic_runs_count_what_the_clients_did(lab):
    import threading

    names = dict(lab.module.LAB.backends)  # host -> address
    before = _scrape(lab)
    scrapes, stop = [], threading.Event()

    def scraper():
        while not stop.is_set():
            scrapes.append(_scrape(lab))
            stop.wait(0.02)

    thread = threading.Thread(target=scraper)
    thread.start()
    wait_for(lambda: scrapes, 5, "the first scrape", interval=0.01)  # scraping before the traffic starts
    try:
        answers = [lab.http_get("h1", "http://117.78.6.19/") for _ in range(12)]
    finally:
        stop.set()
        thread.join()
    after = _scrape(lab)
    assert all(answers) and len(scrapes) >= 2
    served = Counter(parse_answer(a)["backend"] for a in answers)

    def made(state, host):
        return state.get(("lbapp_backend_connections_total", (("backend", names[host]), ("vip", "web"))), 0)

    assert {host: made(after, host) - made(before, host) for host in names} == {h: served[h] for h in names}
    assert after[("lbapp_switch_connected", (("switch", "0000000000000001"),))] == 1
    assert after[("lbapp_packet_ins_total", ())] >= before[("lbapp_packet_ins_total", ())] + 12

    # bytes and packets come from the session flows' counters, read while someone scrapes: each
    # connection sent at least its SYN, its ACK and its GET through the balancer
    def sent(state, what, host):
        return state.get((f"lbapp_backend_{what}_total", (("backend", names[host]), ("vip", "web"))), 0)

    wait_for(lambda: all(sent(s := _scrape(lab), "packets", h) - sent(before, "packets", h) >= 3 * served[h]
                         and sent(s, "bytes", h) - sent(before, "bytes", h) >= 3 * 54 * served[h] for h in names),
             15, "the flows' counters to be read")


def test_a_backend_calling_its_own_vip_is_answered_wherever_the_pick_lands_itself_included(lab):
    """Hairpin (issue 26): web's backends each ask web on new connections; a third land on the
    caller (rr: each caller's three calls in a row reach the three backends). Every one is answered; the backend picked for its own call sees the VIP as the
    client (its edge switch's conntrack NAT), the others see the caller's address."""
    callers = {"b1": "10.11.12.11", "b2": "10.11.12.12", "b3": "10.11.13.13"}
    seen = []
    for i in range(102):
        caller = list(callers)[i // 3 % 3]  # three calls in a row each: rr gives them all three backends
        answer = lab.http_get(caller, "http://117.78.6.19/", local_port=62000 + i)
        assert answer, f"{caller}'s call {i} to its own VIP was not answered"
        seen.append((caller, parse_answer(answer)))
    itself = [(c, s) for c, s in seen if s["backend"] == c]
    assert len(itself) >= 30, "too few calls landed on their caller to prove anything"
    assert all(s["client"].split(":")[0] == "117.78.6.19" for _, s in itself), itself
    assert all(s["client"].split(":")[0] == callers[c] for c, s in seen if s["backend"] != c)
    # the same where the switch picks (stream-fast) and over UDP (echo-udp: b1 and b3)
    vips = {v.name: v for v in lab.cfg.vips}
    for name, askers in (("stream-fast", ("b1", "b2", "b3")), ("echo-udp", ("b1", "b3"))):
        answers = [(caller, lab.ask(caller, vips[name])) for caller in askers for _ in range(6)]
        assert all(a for _, a in answers), (name, answers)
        landed = [(c, parse_answer(a)) for c, a in answers]
        assert all(s["client"].split(":")[0] == ("117.78.6.19" if s["backend"] == c else callers[c])
                   for c, s in landed), (name, landed)
