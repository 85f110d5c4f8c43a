"""Connections outlive a switch that loses its tables (issue 22): the controller keeps every
pick, and a switch that comes back without them (a wipe, a restart, a flush) gets them back, so
each connection's later packets go to the backend it had. Through the offline model of the
switch (tests/helpers/oftables.py), whose flow statistics answer the controller's readings."""
from __future__ import annotations

from collections import Counter
from typing import Any

from os_ken.lib.packet import tcp
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from lbapp.handlers.readings import FlowStat
from lbapp.pipeline import session as session_flows
from tests.helpers.frames import arp_reply, tcp_frame
from tests.helpers.oftables import Switch
from tests.unit.test_stages import (BALANCER, CLIENT, GW_IP, GW_MAC, GW_PORT, LB_IP, LB_MAC, VIP, Rig, cross_vlan_with,
                                    learned)

LC = cross_vlan_with("web", scheduler="lc")  # least connection: a fresh pick is not the old one


class ReadingRig(Rig):
    """A Rig whose switches answer the controller's flow statistics requests at once."""

    def deliver(self, out: list[tuple[int, Any]], run_packet_outs: bool = True) -> list:
        reads = [(dpid, m) for dpid, m in out if isinstance(m, parser.OFPFlowStatsRequest)]
        results = super().deliver([(d, m) for d, m in out if not isinstance(m, parser.OFPFlowStatsRequest)],
                                  run_packet_outs)
        for dpid, request in reads:
            stats = [FlowStat(f["cookie"], 0, 0.0, f["match"], f["eth_dst"], 0, f["priority"])
                     for f in self.switches[dpid].flow_stats(request)]
            results += self.deliver(self.lb.session_stats(dpid, request.xid, stats, self.now), run_packet_outs)
        return results

    def loses_its_tables(self, dpid: int) -> None:
        """The switch restarts (or its controller is deleted and set again): it comes back empty."""
        self.lb.switch_disconnected(dpid)
        self.connect(dpid)
        self.send(dpid, arp_reply(GW_MAC, GW_IP, LB_MAC, LB_IP), GW_PORT)  # the router answers the probe again


def packet(sport: int, flags: int = tcp.TCP_ACK) -> bytes:
    return tcp_frame(GW_MAC, LB_MAC, CLIENT, VIP, sport, 80, flags=flags)


def backend_of(rig: Rig, sport: int) -> str:
    """Where the connection's next packet leaves to (its backend address), after whatever the
    controller answered when the switch sent it up."""
    results = rig.send(BALANCER, packet(sport), GW_PORT)
    leaving = [r for r in results if r.ports == [GW_PORT]]
    assert leaving, f"connection {sport}: {[r.ports for r in results]}"
    return leaving[-1].text["ipv4_dst"]


def opened(rig: Rig, n: int) -> dict[int, str]:
    """``n`` connections opened through the VIP (least connection: spread over the backends)."""
    for i in range(n):
        rig.send(BALANCER, packet(41000 + i, tcp.TCP_SYN), GW_PORT)
    return {41000 + i: backend_of(rig, 41000 + i) for i in range(n)}


def test_a_switch_back_without_its_tables_gets_every_connection_back_on_its_backend():
    rig = ReadingRig(LC)
    learned(rig)
    before = opened(rig, 6)
    assert len(set(before.values())) == 3  # more connections than backends
    counts = Counter(rig.lb.sessions.counts(1))
    rig.loses_its_tables(BALANCER)
    # restored when the switch's empty table was read back: no packet went up for them
    assert [r for sport in before for r in rig.send(BALANCER, packet(sport), GW_PORT) if r.ports == ["CONTROLLER"]] \
        == []
    assert {sport: backend_of(rig, sport) for sport in before} == before
    assert Counter(rig.lb.sessions.counts(1)) == counts and rig.lb.snapshot(rig.now)["counters"][
        "sessions_restored"] == 6


def test_a_connection_whose_packet_beats_the_reading_keeps_its_backend_too():
    rig = Rig(LC)  # its switches do not answer readings: the packet comes first
    learned(rig)
    before = opened(rig, 6)
    rig.lb.switch_disconnected(BALANCER)
    rig.connect(BALANCER)
    rig.send(BALANCER, arp_reply(GW_MAC, GW_IP, LB_MAC, LB_IP), GW_PORT)
    assert {sport: backend_of(rig, sport) for sport in before} == before
    assert len(rig.lb.sessions) == 6


def test_a_switch_that_kept_its_table_has_its_vanished_sessions_forgotten():
    """The kept mark is there: a session whose flow is gone ended while the switch was away."""
    rig = ReadingRig(LC)
    learned(rig)
    before = opened(rig, 3)
    gone = next(iter(before))
    table = rig.switches[BALANCER].tables[20]
    assert any(session_flows.is_kept_mark(f.cookie) for f in table)
    table[:] = [f for f in table if f.match.fields.get("tcp_src", (None,))[0] != gone]  # idled out, unheard
    rig.lb.switch_disconnected(BALANCER)
    rig.deliver(rig.lb.switch_connected(BALANCER, rig.now))  # reconnects with its tables
    assert len(rig.lb.sessions) == 2 and sum(rig.lb.sessions.counts(1).values()) == 2


def test_a_session_table_flushed_while_connected_comes_back_whole():
    rig = ReadingRig(LC)
    learned(rig)
    before = opened(rig, 4)
    switch = rig.switches[BALANCER]
    flushed = [f for f in switch.tables[20] if f.cookie >> 56 == 0x1B]
    switch.tables[20] = []  # ovs-ofctl del-flows s1 table=20: flow-removed (delete) for each session
    sessions = [f for f in flushed if f.priority == 100]
    # OVS sends every flow-removed at once: the controller has answered them all before the
    # reply to the reading the first one asked for comes, and that reply shows only the first flow
    answers = [rig.lb.flow_removed(BALANCER, f.cookie, ofp.OFPRR_DELETE, rig.now, 0,
                                   dict((n, v) for n, (v, _) in f.match.fields.items())) for f in sessions]
    for answer in answers:
        rig.deliver(answer)
    assert {sport: backend_of(rig, sport) for sport in before} == before
    assert len(rig.lb.sessions) == 4
    assert rig.lb.counters["sessions_restored"] == 4  # each given back once, not again by the reading
    # the table's static flows came back too: a new connection is picked as before
    assert rig.send(BALANCER, packet(42000, tcp.TCP_SYN), GW_PORT)[0].ports == ["CONTROLLER"]
    assert len(rig.lb.sessions) == 5


def test_a_deleted_session_flow_is_no_end_but_an_idle_timeout_is():
    rig = ReadingRig(LC)
    learned(rig)
    opened(rig, 1)
    (sess,) = rig.lb.sessions.by_id.values()
    cookie = session_flows.session_cookie(1, sess.session_id)
    restored = rig.lb.flow_removed(BALANCER, cookie, ofp.OFPRR_DELETE, rig.now)
    assert len(rig.lb.sessions) == 1 and any(getattr(m, "info", {}).get("cookie") == cookie for _, m in restored)
    rig.lb.flow_removed(BALANCER, cookie, ofp.OFPRR_IDLE_TIMEOUT, rig.now)
    assert len(rig.lb.sessions) == 0


def test_pin_conntrack_connections_keep_their_backends_when_the_switch_loses_its_conntrack():
    """The switch's conntrack is gone (ovs-vswitchd restarted): each connection's next packet
    comes up as a new one (the model has no ct_label: the controller's answers are read)."""
    from lbapp.pipeline import cookies
    from lbapp.service import Balancer

    lb = Balancer(cross_vlan_with("web", scheduler="lc", pin="conntrack"))
    lb.switch_connected(BALANCER, 0.0)
    punted = cookies.make(cookies.STAGE_SESSION, vip=1)

    def pinned_to(sport: int, flags: int, now: float) -> str:
        (_, pick), = lb.packet_in(BALANCER, GW_PORT, punted, packet(sport, flags), now)
        return str(pick.info["backend"])

    before = {sport: pinned_to(sport, tcp.TCP_SYN, 1.0) for sport in range(41000, 41006)}
    assert len(set(before.values())) == 3 and len(lb.pin_memory) == 6
    counts = Counter(lb.sessions.counts(1))
    assert {sport: pinned_to(sport, tcp.TCP_ACK, 2.0) for sport in before} == before  # least connection
    assert Counter(lb.sessions.counts(1)) == counts  # pinned again, not counted again
    pinned_to(42000, tcp.TCP_SYN, 3.0)  # a new connection is picked, and counted
    assert sum(lb.sessions.counts(1).values()) == 7


def test_the_pin_memory_forgets_in_order_and_within_its_bound():
    from ipaddress import IPv4Address as IP

    from lbapp.shared import ConnKey
    from lbapp.state.pinmemory import PinMemory

    memory = PinMemory(remember_s=10, limit=3)
    keys = [ConnKey(6, IP("200.1.1.19"), 40000 + i, IP("117.78.6.19"), 80) for i in range(4)]
    for i, key in enumerate(keys[:3]):
        memory.remember(key, IP("10.11.12.11"), float(i))
    memory.remember(keys[0], IP("10.11.12.11"), 5.0)  # pinned again: remembered anew
    assert memory.expire(12.5) == 2 and memory.recall(keys[0], 12.5) == IP("10.11.12.11")
    memory.remember(keys[3], IP("10.11.12.12"), 12.0)
    memory.remember(keys[1], IP("10.11.12.12"), 12.0)
    memory.remember(keys[2], IP("10.11.12.12"), 12.0)  # over the bound: the oldest (keys[0]) goes
    assert len(memory) == 3 and memory.recall(keys[0], 12.0) is None
    assert memory.recall(keys[3], 22.5) is None  # remembered 10 s


# as `ovs-appctl dpctl/dump-conntrack zone=27` prints them (OVS 3.1 userspace datapath)
CONNTRACK_DUMP = """\
tcp,orig=(src=200.1.1.19,dst=117.78.6.19,sport=41000,dport=80),reply=(src=117.78.6.19,dst=200.1.1.19,sport=80,dport=41000),zone=27,mark=168496139,protoinfo=(state=SYN_SENT)
udp,orig=(src=200.1.1.19,dst=117.78.6.19,sport=41001,dport=5353),reply=(src=117.78.6.19,dst=200.1.1.19,sport=5353,dport=41001),zone=27,mark=168496140
tcp,orig=(src=200.1.1.19,dst=117.78.6.19,sport=41002,dport=80),reply=(src=117.78.6.19,dst=200.1.1.19,sport=80,dport=41002),zone=5,mark=168496139,protoinfo=(state=SYN_SENT)
tcp,orig=(src=200.1.1.19,dst=117.78.6.19,sport=41003,dport=80),reply=(src=117.78.6.19,dst=200.1.1.19,sport=80,dport=41003),zone=27,protoinfo=(state=SYN_SENT)
icmp,orig=(src=10.0.0.1,dst=10.0.0.2,id=1,type=8,code=0),reply=(src=10.0.0.2,dst=10.0.0.1,id=1,type=0,code=0),zone=27,mark=1
ovs-vswitchd: no datapaths exist
"""


def test_the_pins_in_a_conntrack_dump_are_read_with_the_backend_each_mark_names():
    from ipaddress import IPv4Address as IP

    from lbapp import ctzone
    from lbapp.shared import ConnKey

    assert list(ctzone.parse_pins(CONNTRACK_DUMP.splitlines())) == [
        (ConnKey(6, IP("200.1.1.19"), 41000, IP("117.78.6.19"), 80), IP("10.11.12.11")),
        (ConnKey(17, IP("200.1.1.19"), 41001, IP("117.78.6.19"), 5353), IP("10.11.12.12"))]  # other zones, no mark: not ours


def test_pins_read_back_are_remembered_only_for_pin_conntrack_vips_and_backends_they_still_have():
    """A restarted controller (no memory) reads the pins: a connection the switch then loses
    keeps its backend although a fresh pick would go elsewhere."""
    from ipaddress import IPv4Address as IP

    from lbapp.pipeline import cookies
    from lbapp.service import Balancer
    from lbapp.shared import ConnKey

    lb = Balancer(cross_vlan_with("web", scheduler="lc", pin="conntrack"))
    lb.switch_connected(BALANCER, 0.0)
    key = ConnKey(6, IP(CLIENT), 41000, IP(VIP), 80)
    found = [(key, IP("10.11.13.13")), (ConnKey(6, IP(CLIENT), 41001, IP(VIP), 80), IP("10.99.0.1")),  # not its backend
             (ConnKey(6, IP(CLIENT), 41002, IP(VIP), 8080), IP("10.11.12.11"))]  # no such VIP
    assert lb.remember_pins(found, 1.0) == 1 and len(lb.pin_memory) == 1
    (_, pick), = lb.packet_in(BALANCER, GW_PORT, cookies.make(cookies.STAGE_SESSION, vip=1),
                              packet(41000, tcp.TCP_ACK), 2.0)
    assert str(pick.info["backend"]) == "10.11.13.13"  # lc's fresh pick would be .11 (every count 0)
    assert sum(lb.sessions.counts(1).values()) == 0  # a connection it did not pick is not counted as new
