"""What the pipeline does with packets: a real Balancer programs model switches
(tests/helpers/oftables.py), and each case says where a packet leaves and how it was rewritten.

Each case: (number, description, config, setup, switch, frame, in_port, expected). The setup
steps drive the balancer the way the app does: switches connect, the gateway's ARP reply goes to
the controller as a packet-in (the next hop is learned), first packets of connections go to the
controller and come back as session flows, a reload applies a new config; everything the
balancer returns is installed in the model switches. Only then the case's frame goes through
the switch, untouched by the controller.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, NamedTuple

import pytest
import yaml
from os_ken.lib.packet import arp, ether_types, ethernet, packet

from lbapp.config import load_config, parse_config
from lbapp.pipeline.tables import BY_ID, CT_ZONE
from lbapp.service import Balancer
from tests.helpers.frames import arp_reply, arp_request, tcp_frame, udp_frame
from tests.helpers.oftables import Result, Switch, default_bucket, fields_of, text_of

ROOT = Path(__file__).resolve().parents[2]
WORKED = ROOT / "topologies" / "worked_example.yaml"
CROSS = ROOT / "topologies" / "cross_vlan.yaml"
CROSS_DATA = ROOT / "tests" / "data" / "cross_vlan.yaml"

BALANCER, EDGE = 1, 2  # dpids in every shipped config
GW_PORT, HOST_PORT, DIRECTOR_PORT = 3, 1, 2  # balancer switch ports: the router, a host, the director
GW_IP, GW_MAC = "10.0.0.1", "aa:bb:cc:dd:ee:ff"  # the router (the source's next-hop MAC)
LB_IP, LB_MAC = "10.0.0.2", "02:00:00:00:00:02"
HOST_IP, HOST_MAC = "10.0.0.10", "02:00:00:00:00:10"
CLIENT, VIP, DIRECTOR_VIP = "200.1.1.19", "117.78.6.19", "117.78.6.20"


def syn(dport: int = 80, sport: int = 40000) -> bytes:
    """A client's first packet to the VIP, as the router forwards it to the balancer."""
    return tcp_frame(GW_MAC, LB_MAC, CLIENT, VIP, sport, dport)


# the backends' fabricated MACs (computed, prefix layout, tag aa:bb), spelled out
FABRICATED = {"10.11.12.11": "aa:bb:0a:0b:0c:0b", "10.11.12.12": "aa:bb:0a:0b:0c:0c",
              "10.11.12.13": "aa:bb:0a:0b:0c:0d", "10.11.13.13": "aa:bb:0a:0b:0d:0d"}


class Rig:
    """A Balancer wired to model switches as the app wires it to OVS: its messages go to the
    switches, a packet a switch sends to the controller goes to ``packet_in`` (and the
    balancer's packet-outs that re-inject it run in the switch)."""

    def __init__(self, cfg) -> None:
        self.lb = Balancer(cfg)
        self.switches: dict[int, Switch] = {}
        self.now = 0.0

    def deliver(self, out: list[tuple[int, Any]], run_packet_outs: bool = True) -> list[Result]:
        """Install the balancer's messages; the results of its packet-outs."""
        results = []
        for dpid, msg in out:
            for po in self.switches[dpid].apply([msg]):
                if run_packet_outs:
                    results.append(self.switches[dpid].packet_out(po))
        return results

    def connect(self, *dpids: int) -> None:
        for dpid in dpids:
            self.switches[dpid] = Switch()
            # its packet-outs are ARP probes of the gateways, flooded: nothing comes back here
            self.deliver(self.lb.switch_connected(dpid, self.now), run_packet_outs=False)

    def send(self, dpid: int, frame: bytes, in_port: int, advance: float = 1.0) -> list[Result]:
        """``frame`` through the switch, ``advance`` seconds on; what it punts goes to the
        balancer, whose answer is installed. The results: the switch's, then those of the
        packet-outs."""
        self.now += advance
        results = [self.switches[dpid].process(fields_of(frame), in_port)]
        for out in results[0].outputs:
            if out.port == "CONTROLLER":
                results += self.deliver(self.lb.packet_in(dpid, in_port, out.cookie, frame, self.now))
        return results

    def reload(self, cfg) -> None:
        self.now += 1.0
        self.deliver(self.lb.reconfigure(cfg, self.now))


# --- setup steps ---

def connected(rig: Rig) -> None:
    rig.connect(BALANCER, EDGE)


def learned(rig: Rig) -> None:
    """Connected, and the router's reply to the balancer's ARP probe seen: next hop known."""
    connected(rig)
    rig.send(BALANCER, arp_reply(GW_MAC, GW_IP, LB_MAC, LB_IP), GW_PORT)


def first(frame: bytes, in_port: int = GW_PORT) -> Callable[[Rig], None]:
    """A connection's first packet: to the controller, which installs its session flow."""
    return lambda rig: rig.send(BALANCER, frame, in_port)


def switch_picks(ip: str) -> Callable[[Rig], None]:
    """The balancer switch's select groups pick the bucket naming ``ip`` where they have one
    (standing in for OVS's dp_hash of the connection), else hash as usual."""
    def step(rig: Rig) -> None:
        sw = rig.switches[BALANCER]

        def bucket_for(group_id: int, pkt: dict) -> int:
            buckets = sw.groups[group_id].buckets
            naming = [i for i, b in enumerate(buckets)
                      if any(getattr(a, "key", None) == "eth_dst" and a.value == FABRICATED[ip] for a in b)]
            return naming[0] if naming else default_bucket(group_id, pkt, len(buckets))
        sw.bucket_for = bucket_for
    return step


def reload(cfg) -> Callable[[Rig], None]:
    return lambda rig: rig.reload(cfg)


def cross_vlan_with(vip_name: str | None = None, balancer: dict | None = None, **changes) -> Any:
    doc = yaml.safe_load(CROSS.read_text())
    if vip_name:
        next(v for v in doc["vips"] if v["name"] == vip_name).update(changes)
    doc["balancer"].update(balancer or {})
    return parse_config(doc)


STREAM_FAST = 7002
DRAINED_13 = cross_vlan_with("stream-fast", backends=[{"ip": "10.11.12.11"}, {"ip": "10.11.12.12"},
                                                      {"ip": "10.11.13.13", "weight": 0}])
CONTROLLER_ARP = cross_vlan_with(balancer={"arp_proxy": "controller"})


# a backend's call to its own VIP after the balancer picked it for itself, as its edge gets it from the router
HAIRPIN_CALL = tcp_frame(GW_MAC, "02:00:00:00:01:11", "10.11.12.11", "10.11.12.11", 40000, 80)


class Case(NamedTuple):
    no: int
    what: str
    config: Path | Any
    setup: tuple[Callable[[Rig], None], ...]
    dpid: int
    frame: bytes
    in_port: int
    expect: dict  # ports, path (stage names in order), fields (text; a set: any of), ct_mark


TO_GATEWAY = {"eth_src": LB_MAC, "eth_dst": GW_MAC, "ipv4_src": CLIENT, "nw_ttl": 63}
SESSION_PATH = ["classify", "session", "translate", "next_hop"]
PICK_PATH = ["classify", "session", "session", "pin", "translate", "next_hop"]
ARP_FROM_HOST = {"eth_dst": HOST_MAC, "arp_op": 2, "arp_tpa": HOST_IP, "arp_tha": HOST_MAC}

CASES = [
    Case(1, "a client SYN to the VIP goes through conntrack (no pin) to the controller from the session stage",
         WORKED, (learned,), BALANCER, syn(), GW_PORT,
         {"ports": ["CONTROLLER"], "path": ["classify", "session", "session"]}),
    Case(2, "with its session flow the SYN leaves back to the router, framed to it, for backend .11",
         WORKED, (learned, first(syn())), BALANCER, syn(), GW_PORT,
         {"ports": [GW_PORT], "path": SESSION_PATH,
          "fields": dict(TO_GATEWAY, ipv4_dst="10.11.12.11", tcp_src=40000, tcp_dst=80)}),
    Case(3, "the next connection goes to the next backend (rr)",
         WORKED, (learned, first(syn()), first(syn(sport=40001))), BALANCER, syn(sport=40001), GW_PORT,
         {"ports": [GW_PORT], "path": SESSION_PATH, "fields": dict(TO_GATEWAY, ipv4_dst="10.11.12.12")}),
    Case(4, "a connection arriving on another port leaves through the gateway's port",
         WORKED, (learned, first(syn(), HOST_PORT)), BALANCER, syn(), HOST_PORT,
         {"ports": [GW_PORT], "path": SESSION_PATH, "fields": dict(TO_GATEWAY, ipv4_dst="10.11.12.11")}),
    Case(5, "gateway unknown: a connection with a session flow is dropped in next_hop",
         WORKED, (connected, first(syn())), BALANCER, syn(), GW_PORT,
         {"ports": ["drop"], "path": SESSION_PATH}),
    Case(6, "ARP for a backend is answered IN_PORT with its fabricated MAC, built in the switch",
         WORKED, (connected,), BALANCER, arp_request(HOST_MAC, HOST_IP, "10.11.12.13"), HOST_PORT,
         {"ports": [HOST_PORT], "path": ["classify", "arp_proxy"],
          "fields": dict(ARP_FROM_HOST, eth_src="aa:bb:0a:0b:0c:0d", arp_sha="aa:bb:0a:0b:0c:0d",
                         arp_spa="10.11.12.13")}),
    Case(7, "ARP for the VIP is answered with the balancer's MAC",
         WORKED, (connected,), BALANCER, arp_request(HOST_MAC, HOST_IP, VIP), HOST_PORT,
         {"ports": [HOST_PORT], "path": ["classify", "arp_proxy"],
          "fields": dict(ARP_FROM_HOST, eth_src=LB_MAC, arp_sha=LB_MAC, arp_spa=VIP)}),
    Case(8, "the router's ARP for the balancer is copied to the controller (learning) and answered",
         WORKED, (connected,), BALANCER, arp_request(GW_MAC, GW_IP, LB_IP), GW_PORT,
         {"ports": ["CONTROLLER", GW_PORT], "path": ["classify", "arp_proxy"],
          "fields": {"eth_src": LB_MAC, "eth_dst": GW_MAC, "arp_sha": LB_MAC, "arp_spa": LB_IP, "arp_tpa": GW_IP}}),
    Case(9, "the router's reply to a probe goes to the controller only",
         WORKED, (learned,), BALANCER, arp_reply(GW_MAC, GW_IP, LB_MAC, LB_IP), GW_PORT,
         {"ports": ["CONTROLLER"], "path": ["classify", "arp_proxy"]}),
    Case(10, "ARP for an address that is no backend's is forwarded normally",
         WORKED, (connected,), BALANCER, arp_request(HOST_MAC, HOST_IP, "10.0.0.99"), HOST_PORT,
         {"ports": ["NORMAL"], "path": ["classify", "arp_proxy"], "fields": {"arp_op": 1, "eth_src": HOST_MAC}}),
    Case(11, "edge: a backend's reply from its service port leaves as the VIP",
         WORKED, (connected,), EDGE, tcp_frame("02:00:00:00:01:11", GW_MAC, "10.11.12.11", CLIENT, 80, 40000), 1,
         {"ports": ["NORMAL"], "path": ["classify", "snat"], "fields": {"ipv4_src": VIP, "ipv4_dst": CLIENT,
                                                                          "nw_ttl": 64}}),
    Case(12, "edge: a backend's traffic from another port is not rewritten",
         WORKED, (connected,), EDGE, tcp_frame("02:00:00:00:01:11", GW_MAC, "10.11.12.11", CLIENT, 22, 40000), 1,
         {"ports": ["NORMAL"], "path": ["classify", "snat"], "fields": {"ipv4_src": "10.11.12.11"}}),
    Case(13, "edge: a host that is no backend is switched normally",
         WORKED, (connected,), EDGE, tcp_frame("02:00:00:00:01:99", GW_MAC, "10.11.12.99", CLIENT, 80, 40000), 1,
         {"ports": ["NORMAL"], "path": ["classify"], "fields": {"ipv4_src": "10.11.12.99"}}),
    Case(14, "a frame to a fabricated MAC (external director) is translated and routed",
         CROSS, (learned,), BALANCER,
         tcp_frame(HOST_MAC, FABRICATED["10.11.13.13"], CLIENT, DIRECTOR_VIP, 40000, 8080), DIRECTOR_PORT,
         {"ports": [GW_PORT], "path": ["classify", "translate", "next_hop"],
          "fields": dict(TO_GATEWAY, ipv4_dst="10.11.13.13", tcp_dst=8080)}),
    Case(15, "gateway unknown: a director's frame is dropped in next_hop",
         CROSS, (connected,), BALANCER,
         tcp_frame(HOST_MAC, FABRICATED["10.11.13.13"], CLIENT, DIRECTOR_VIP, 40000, 8080), DIRECTOR_PORT,
         {"ports": ["drop"], "path": ["classify", "translate", "next_hop"]}),
    Case(16, "UDP to the VIP: the first datagram's session sends the rest to the weighted pick",
         CROSS, (learned, first(udp_frame(GW_MAC, LB_MAC, CLIENT, VIP, 5000, 5353))), BALANCER,
         udp_frame(GW_MAC, LB_MAC, CLIENT, VIP, 5000, 5353), GW_PORT,
         {"ports": [GW_PORT], "path": SESSION_PATH,
          "fields": dict(TO_GATEWAY, ipv4_dst="10.11.12.11", udp_src=5000, udp_dst=5353)}),
    Case(17, "selection: switch: no controller; the bucket's backend is committed as ct_mark and used",
         CROSS, (learned, switch_picks("10.11.13.13")), BALANCER, syn(STREAM_FAST), GW_PORT,
         {"ports": [GW_PORT], "path": PICK_PATH, "fields": dict(TO_GATEWAY, ipv4_dst="10.11.13.13"),
          "ct_mark": "10.11.13.13"}),
    Case(18, "selection: switch: the connection's next packet follows its mark, not the group",
         CROSS, (learned, switch_picks("10.11.13.13"), first(syn(STREAM_FAST)), switch_picks("10.11.12.11")),
         BALANCER, syn(STREAM_FAST), GW_PORT,
         {"ports": [GW_PORT], "path": ["classify", "session", "session", "translate", "next_hop"],
          "fields": dict(TO_GATEWAY, ipv4_dst="10.11.13.13"), "ct_mark": "10.11.13.13"}),
    Case(19, "selection: switch: after a reload drains the backend its connection stays on it",
         CROSS, (learned, switch_picks("10.11.13.13"), first(syn(STREAM_FAST)), reload(DRAINED_13)),
         BALANCER, syn(STREAM_FAST), GW_PORT,
         {"ports": [GW_PORT], "path": ["classify", "session", "session", "translate", "next_hop"],
          "fields": dict(TO_GATEWAY, ipv4_dst="10.11.13.13")}),
    Case(20, "selection: switch: after that reload a new connection never picks the drained backend",
         CROSS, (learned, switch_picks("10.11.13.13"), first(syn(STREAM_FAST)), reload(DRAINED_13)),
         BALANCER, syn(STREAM_FAST, sport=40001), GW_PORT,
         {"ports": [GW_PORT], "path": PICK_PATH,
          "fields": dict(TO_GATEWAY, ipv4_dst={"10.11.12.11", "10.11.12.12"})}),
    Case(21, "without stream-fast, port 7002 on the VIP is not the balancer's: forwarded normally",
         CROSS_DATA, (learned,), BALANCER, syn(STREAM_FAST), GW_PORT,
         {"ports": ["NORMAL"], "path": ["classify"], "fields": {"ipv4_dst": VIP, "eth_dst": LB_MAC}}),
    Case(22, "the third web connection goes to the backend behind the second route",
         CROSS_DATA, (learned, first(syn()), first(syn(sport=40001)), first(syn(sport=40002))), BALANCER,
         syn(sport=40002), GW_PORT,
         {"ports": [GW_PORT], "path": SESSION_PATH, "fields": dict(TO_GATEWAY, ipv4_dst="10.11.13.13")}),
    Case(23, "arp_proxy: controller: ARP for a backend is punted to the controller",
         CONTROLLER_ARP, (connected,), BALANCER, arp_request(HOST_MAC, HOST_IP, "10.11.13.13"), HOST_PORT,
         {"ports": ["CONTROLLER"], "path": ["classify", "arp_proxy"]}),
    Case(24, "edge: hairpin: a backend's own call to its VIP, picked for itself, reaches it from the VIP",
         WORKED, (connected,), EDGE, HAIRPIN_CALL, 3,
         {"ports": ["NORMAL"], "path": ["classify", "snat", "snat"],
          "fields": {"ipv4_src": VIP, "ipv4_dst": "10.11.12.11", "tcp_src": 40000, "tcp_dst": 80}}),
    Case(25, "edge: hairpin: its answer to the VIP goes back to the caller's port, from the VIP",
         WORKED, (connected, lambda rig: rig.send(EDGE, HAIRPIN_CALL, 3)), EDGE,
         tcp_frame("02:00:00:00:01:11", GW_MAC, "10.11.12.11", VIP, 80, 40000), 1,
         {"ports": ["NORMAL"], "path": ["classify", "snat", "snat"],
          "fields": {"ipv4_src": VIP, "ipv4_dst": "10.11.12.11", "tcp_src": 80, "tcp_dst": 40000}}),
]


def _stage(table_id: int) -> str:
    return BY_ID[table_id].name


def _check(result: Result, expect: dict, rig: Rig, frame: bytes) -> None:
    assert result.ports == expect["ports"]
    assert [_stage(hit.table) for hit in result.trace] == expect["path"]
    for name, want in expect.get("fields", {}).items():
        got = result.text[name]
        assert got in want if isinstance(want, set) else got == want, f"{name}: {got} != {want}"
    if "ct_mark" in expect:
        mark = rig.switches[BALANCER].conntrack.mark_of(fields_of(frame), CT_ZONE)
        assert mark is not None and text_of("ipv4_dst", mark) == expect["ct_mark"]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.no:02d}" for c in CASES])
def test_stage(case: Case) -> None:
    cfg = load_config(case.config) if isinstance(case.config, Path) else case.config
    rig = Rig(cfg)
    for step in case.setup:
        step(rig)
    result = rig.switches[case.dpid].process(fields_of(case.frame), case.in_port)
    _check(result, case.expect, rig, case.frame)


def test_case_numbers_run_in_order():
    assert [c.no for c in CASES] == list(range(1, len(CASES) + 1))


def test_the_balancers_packet_out_carries_the_first_packet_the_same_way():
    """The controller's answer to a first packet re-injects it (packet-out to TABLE), and it
    leaves as the connection's later packets do."""
    rig = Rig(load_config(WORKED))
    learned(rig)
    punted, reinjected = rig.send(BALANCER, syn(), GW_PORT)
    assert punted.ports == ["CONTROLLER"]
    assert reinjected.ports == [GW_PORT] and reinjected.text["ipv4_dst"] == "10.11.12.11"
    assert reinjected.text["eth_dst"] == GW_MAC and reinjected.text["nw_ttl"] == 63


def test_controller_mode_arp_proxy_answers_with_a_packet_out():
    rig = Rig(CONTROLLER_ARP)
    connected(rig)
    punted, answer = rig.send(BALANCER, arp_request(HOST_MAC, HOST_IP, "10.11.13.13"), HOST_PORT)
    assert punted.ports == ["CONTROLLER"]
    assert answer.ports == [HOST_PORT] and answer.trace == []  # straight out, not through the pipeline
    assert answer.text["arp_sha"] == "aa:bb:0a:0b:0d:0d" and answer.text["arp_spa"] == "10.11.13.13"


def test_a_host_on_another_port_cannot_take_the_next_hop_but_a_gateway_that_moved_is_followed():
    rig = Rig(load_config(WORKED))
    learned(rig)
    forged = arp_reply("02:00:00:00:00:fe", GW_IP, LB_MAC, LB_IP)
    rig.send(BALANCER, forged, 4)  # another host claims the router's address: not believed
    first(syn())(rig)
    result = rig.switches[BALANCER].process(fields_of(syn()), GW_PORT)
    assert result.ports == [GW_PORT] and result.text["eth_dst"] == GW_MAC
    # a VRRP failover on the router's port: its gratuitous ARP is followed at once
    rig.send(BALANCER, arp_reply("02:00:00:00:00:fd", GW_IP, "ff:ff:ff:ff:ff:ff", GW_IP), GW_PORT)
    result = rig.switches[BALANCER].process(fields_of(syn()), GW_PORT)
    assert result.ports == [GW_PORT] and result.text["eth_dst"] == "02:00:00:00:00:fd"
    # the router moved to port 4: silent on its port for three probe intervals, it is found there
    rig.now += 3 * rig.lb.cfg.balancer.probe_interval
    rig.send(BALANCER, forged, 4)
    result = rig.switches[BALANCER].process(fields_of(syn()), GW_PORT)
    assert result.ports == [4] and result.text["eth_dst"] == "02:00:00:00:00:fe"


def test_the_ports_a_gateway_may_answer_on_can_be_given():
    doc = yaml.safe_load(WORKED.read_text())
    doc["gateways"][0]["ports"] = [4]
    rig = Rig(parse_config(doc))
    learned(rig)  # its answer on port 3 is not believed: no next hop
    rig.now += 100.0
    rig.send(BALANCER, arp_reply("02:00:00:00:00:fe", GW_IP, LB_MAC, LB_IP), 4)
    first(syn())(rig)
    result = rig.switches[BALANCER].process(fields_of(syn()), GW_PORT)
    assert result.ports == [4] and result.text["eth_dst"] == "02:00:00:00:00:fe"
    assert rig.lb.snapshot(rig.now)["counters"]["arp_not_believed"] == 1


def test_a_flood_of_new_connections_hands_a_controller_vip_to_the_switch_and_back():
    from os_ken.lib.packet import tcp

    doc = yaml.safe_load(WORKED.read_text())
    doc["balancer"].update(overload_above=50, overload_hold=10)
    rig = Rig(parse_config(doc))
    learned(rig)
    rig.deliver(rig.lb.tick(rig.now))  # the rates' first sample
    start = rig.now
    before = rig.send(BALANCER, syn(sport=41000), GW_PORT, advance=0.01)
    for i in range(1, 100):  # 100 new connections in half a second, each through the controller
        rig.send(BALANCER, syn(sport=41000 + i), GW_PORT, advance=0.005)
    rig.now = start + 1.0
    rig.deliver(rig.lb.tick(rig.now))
    assert rig.lb.snapshot(rig.now)["vips"][0]["overloaded"] is True
    # now the switch picks: no packet-in, the connection leaves for a backend, pinned in conntrack
    during = rig.send(BALANCER, syn(sport=42000), GW_PORT, advance=0.1)
    assert during[0].ports == [GW_PORT] and len(rig.lb.sessions) == 100
    backend = during[0].text["ipv4_dst"]
    # a connection set up before keeps its session flow, and its backend
    again = rig.send(BALANCER, syn(sport=41000), GW_PORT, advance=0.1)
    assert again[0].text["ipv4_dst"] == before[-1].text["ipv4_dst"]
    # the hold over with no new flood: the controller picks again...
    rig.now += 10.0
    rig.deliver(rig.lb.tick(rig.now))
    assert rig.lb.snapshot(rig.now)["vips"][0]["overloaded"] is False
    assert rig.send(BALANCER, syn(sport=43000), GW_PORT)[0].ports == ["CONTROLLER"]
    # ...and the connection pinned meanwhile stays on its backend
    later = rig.send(BALANCER, tcp_frame(GW_MAC, LB_MAC, CLIENT, VIP, 42000, 80, flags=tcp.TCP_ACK), GW_PORT)
    assert later[0].ports == [GW_PORT] and later[0].text["ipv4_dst"] == backend


def test_only_a_first_syn_takes_the_pick_flow_other_packets_without_a_session_their_own():
    from os_ken.lib.packet import tcp

    from lbapp.flows import role_of

    rig = Rig(load_config(WORKED))
    learned(rig)
    session = BY_ID[20]

    def roles(frame):
        result = rig.switches[BALANCER].process(fields_of(frame), GW_PORT)
        return result.ports, [role_of(session, hit.priority) for hit in result.trace if hit.table == 20]

    assert roles(syn(sport=44000)) == (["CONTROLLER"], ["new_connection", "pick"])
    ack = tcp_frame(GW_MAC, LB_MAC, CLIENT, VIP, 44001, 80, flags=tcp.TCP_ACK)
    assert roles(ack) == (["CONTROLLER"], ["new_connection", "no_session"])
    synack = tcp_frame(GW_MAC, LB_MAC, CLIENT, VIP, 44002, 80, flags=tcp.TCP_SYN | tcp.TCP_ACK)
    assert roles(synack) == (["CONTROLLER"], ["new_connection", "no_session"])
