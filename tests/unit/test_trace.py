"""ofproto/trace output annotated by stage, role and owner from each rule's cookie."""
from pathlib import Path

from lbapp.config import load_config
from lbapp.trace import annotate, connection_of, opens_connection

ROOT = Path(__file__).resolve().parents[2]

TRACE = """\
Flow: tcp,in_port=1,vlan_tci=0x0000,dl_src=aa:bb:cc:dd:ee:ff,dl_dst=02:00:00:00:00:02,nw_src=200.1.1.19,nw_dst=117.78.6.19,tp_src=40000,tp_dst=80

bridge("s1")
------------
 0. tcp,dl_dst=02:00:00:00:00:02,nw_dst=117.78.6.19,tp_dst=80, priority 200, cookie 0x1b17000100000000
    goto_table:20
20. tcp,nw_src=200.1.1.19,nw_dst=117.78.6.19,tp_src=40000,tp_dst=80, priority 100, cookie 0x1b30000100000007
    set_field:aa:bb:0a:0b:0c:0b->eth_dst
    goto_table:30
30. ip,dl_dst=aa:bb:0a:0b:0c:00/ff:ff:ff:ff:ff:00, priority 100, cookie 0x1b47000000000001
    move:NXM_OF_ETH_DST[0..7]->NXM_OF_IP_DST[0..7]
    goto_table:40
40. ip,nw_dst=10.11.12.0/24, priority 148, cookie 0x1b57000000000001
    output:1
 5. priority 10, cookie 0x42
    drop

Final flow: unchanged
Datapath actions: set(eth(src=02:00:00:00:00:02,dst=aa:bb:cc:dd:ee:ff)),1
"""


def test_each_rule_is_named_by_stage_role_and_owner():
    text, hits = annotate(TRACE, load_config(ROOT / "topologies" / "worked_example.yaml"))
    lines = text.splitlines()
    notes = [line.strip() for line in lines if line.strip().startswith("[")]
    assert notes == ["[lbapp stage classify: vip, VIP web 117.78.6.19:80/tcp]",
                     "[lbapp stage session: connection, session 7]",
                     "[lbapp stage translate: fabricated, route 10.11.12.0/24 via router]",
                     "[lbapp stage next_hop: route, route 10.11.12.0/24 via router]",
                     "[not lbapp's: cookie 0x42]"]
    assert lines[lines.index(" 0. tcp,dl_dst=02:00:00:00:00:02,nw_dst=117.78.6.19,tp_dst=80, priority 200, "
                             "cookie 0x1b17000100000000") + 1] == "    [lbapp stage classify: vip, VIP web 117.78.6.19:80/tcp]"
    assert lines[-1] == "Datapath actions: set(eth(src=02:00:00:00:00:02,dst=aa:bb:cc:dd:ee:ff)),1"
    assert not opens_connection(hits)  # a session holds it: no pick to predict


def test_a_packet_that_opens_a_connection_asks_for_the_pick():
    opening = TRACE.replace("priority 100, cookie 0x1b30000100000007", "priority 10, cookie 0x1b37000100000000")
    _, hits = annotate(opening)
    assert hits[1].stage == "session" and hits[1].role == "new_connection" and opens_connection(hits)
    assert connection_of("in_port=1,tcp,nw_src=200.1.1.19,tp_src=40000,nw_dst=117.78.6.19,tp_dst=80") == (
        "117.78.6.19:80/tcp", "200.1.1.19:40000")
    assert connection_of("udp,nw_src=200.1.1.19,udp_src=5000,nw_dst=117.78.6.20,udp_dst=53") == (
        "117.78.6.20:53/udp", "200.1.1.19:5000")
    assert connection_of("icmp,nw_src=200.1.1.19,nw_dst=117.78.6.19") is None
    assert connection_of("tcp,nw_dst=117.78.6.19,tp_dst=80") is None
