"""The flow-table model itself (tests/helpers/oftables.py), on hand-made flows."""
import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from lbapp.pipeline import bundles
from lbapp.pipeline.actions import conntrack, group, load, move, output, resubmit, set_field
from lbapp.pipeline.fastpath import RawMessage, packet_out_to_table, serialize
from tests.helpers.frames import tcp_frame
from tests.helpers.oftables import CT_EST, CT_NEW, CT_TRK, ModelError, Switch

IP_TCP = {"eth_type": 0x0800, "ip_proto": 6}
PKT = dict(IP_TCP, eth_src="02:00:00:00:00:01", eth_dst="02:00:00:00:00:02", ipv4_src="200.1.1.19",
           ipv4_dst="117.78.6.19", tcp_src=40000, tcp_dst=80, nw_ttl=64)


def flow(table_id=0, priority=100, match=None, actions=(), goto=None, cookie=0, command=ofp.OFPFC_ADD, **kw):
    instructions = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, list(actions))] if actions else []
    if goto is not None:
        instructions.append(parser.OFPInstructionGotoTable(goto))
    return parser.OFPFlowMod(datapath=None, table_id=table_id, priority=priority, cookie=cookie, command=command,
                             match=parser.OFPMatch(**(match or {})), instructions=instructions,
                             out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY, **kw)


def switch(*mods):
    sw = Switch()
    sw.apply(mods)
    return sw


def test_the_highest_priority_match_wins_and_is_traced():
    sw = switch(flow(priority=10, match=IP_TCP, actions=[output(1)], cookie=1),
                flow(priority=20, match=dict(IP_TCP, tcp_dst=80), actions=[output(2)], cookie=2),
                flow(priority=30, match=dict(IP_TCP, tcp_dst=81), actions=[output(3)], cookie=3))
    result = sw.process(PKT, in_port=9)
    assert result.ports == [2] and result.trace == [(0, 20, 2)]
    assert sw.process(dict(PKT, tcp_dst=22), 9).ports == [1]


def test_a_miss_drops_and_two_flows_at_one_priority_are_refused():
    sw = switch(flow(match=dict(IP_TCP, tcp_dst=81), actions=[output(1)]))
    assert sw.process(PKT, 9).ports == ["drop"]
    sw.apply([flow(match=dict(IP_TCP, tcp_dst=80), actions=[output(1)]),
              flow(match={"eth_type": 0x0800, "ipv4_src": "200.1.1.19"}, actions=[output(2)])])
    with pytest.raises(ModelError, match="undefined"):
        sw.process(PKT, 9)


def test_masked_matches_on_macs_addresses_and_ct_state():
    sw = switch(flow(match={"eth_type": 0x0800, "eth_dst": ("02:00:00:00:00:00", "ff:ff:ff:ff:ff:00")},
                     actions=[output(1)], priority=10),
                flow(match={"eth_type": 0x0800, "ipv4_dst": ("117.78.0.0", "255.255.0.0")}, actions=[output(2)],
                     priority=20),
                flow(match={"ct_state": (CT_TRK, CT_TRK)}, actions=[output(3)], priority=30))
    assert sw.process(PKT, 9).ports == [2]
    assert sw.process(dict(PKT, ipv4_dst="117.79.0.1"), 9).ports == [1]
    assert sw.process(dict(PKT, ipv4_dst="117.79.0.1", eth_dst="02:00:00:00:01:02"), 9).ports == ["drop"]
    assert sw.process(dict(PKT, ct_state=CT_TRK | CT_NEW), 9).ports == [3]


def test_goto_applies_actions_then_continues_and_must_go_forward():
    sw = switch(flow(actions=[set_field(eth_dst="aa:bb:0a:0b:0c:0d")], goto=30, cookie=7),
                flow(table_id=30, match={"eth_dst": "aa:bb:0a:0b:0c:0d"}, actions=[output(4)], cookie=8))
    result = sw.process(PKT, 9)
    assert result.ports == [4] and result.trace == [(0, 100, 7), (30, 100, 8)]
    assert result.text["eth_dst"] == "aa:bb:0a:0b:0c:0d"
    with pytest.raises(ModelError, match="does not go forward"):
        sw.apply([flow(table_id=30, goto=10)])


@pytest.mark.parametrize("mod, message", [
    (flow(actions=[parser.OFPActionPushVlan()]), "does not know the action OFPActionPushVlan"),
    (flow(match={"vlan_vid": 0x1014}), "does not know the field 'vlan_vid'"),
    (flow(actions=[set_field(ip_dscp=8)]), "does not know the field 'ip_dscp'"),
    (flow(match={"ipv4_dst": "10.0.0.1"}), "needs eth_type=0x800"),
    (flow(match={"eth_type": 0x0800, "tcp_dst": 80}), "needs ip_proto=0x6"),
    (flow(actions=[group(5)]), "group 0x5, which does not exist"),
    (flow(command=ofp.OFPFC_MODIFY), "not modelled"),
])
def test_what_the_model_does_not_know_or_a_switch_refuses_raises_at_install(mod, message):
    with pytest.raises(ModelError, match=message):
        Switch().apply([mod])


def test_write_actions_and_unknown_messages_raise():
    write = parser.OFPFlowMod(datapath=None, match=parser.OFPMatch(), instructions=[
        parser.OFPInstructionActions(ofp.OFPIT_WRITE_ACTIONS, [output(1)])])
    with pytest.raises(ModelError, match="instruction"):
        Switch().apply([write])
    with pytest.raises(ModelError, match="OFPPortMod"):
        Switch().apply([parser.OFPPortMod(datapath=None)])


def test_add_replaces_an_equal_flow_and_deletes_honour_cookie_masks():
    sw = switch(flow(match=IP_TCP, actions=[output(1)], cookie=0x1100),
                flow(match=IP_TCP, actions=[output(2)], cookie=0x1200))  # same match and priority: replaced
    assert sw.process(PKT, 9).ports == [2] and len(sw.tables[0]) == 1
    sw.apply([flow(priority=50, match=dict(IP_TCP, tcp_dst=80), actions=[output(3)], cookie=0x2200)])
    sw.apply([flow(command=ofp.OFPFC_DELETE, match={}, cookie=0x1000, cookie_mask=0xF000)])
    assert [f.cookie for f in sw.tables[0]] == [0x2200]
    # strict: only the exact match and priority
    sw.apply([flow(command=ofp.OFPFC_DELETE_STRICT, priority=50, match=IP_TCP, cookie=0, cookie_mask=0)])
    assert len(sw.tables[0]) == 1
    sw.apply([flow(command=ofp.OFPFC_DELETE_STRICT, priority=50, match=dict(IP_TCP, tcp_dst=80))])
    assert sw.tables[0] == []


def test_non_strict_delete_takes_flows_at_least_as_specific():
    sw = switch(flow(priority=1, match=IP_TCP, actions=[output(1)]),
                flow(priority=2, match=dict(IP_TCP, tcp_dst=80), actions=[output(2)]),
                flow(priority=3, match={"eth_type": 0x0806}, actions=[output(3)]))
    sw.apply([flow(command=ofp.OFPFC_DELETE, table_id=ofp.OFPTT_ALL, match=IP_TCP)])
    assert [f.priority for f in sw.tables[0]] == [3]


def test_register_moves_with_offsets_and_loads():
    sw = switch(flow(actions=[load("eth_dst", 0xAABB, 32, 16), move("ipv4_dst", "reg1", 32),
                              move("reg1", "eth_dst", 32, 0, 0), output(1)]))
    result = sw.process(PKT, 9)
    assert result.text["eth_dst"] == "aa:bb:75:4e:06:13" and result.packet["reg1"] == 0x754E0613
    with pytest.raises(ModelError, match=r"reg1\[32..47\] is outside"):
        switch(flow(actions=[load("reg1", 0xAABB, 32, 16)])).process(PKT, 9)
    sw = switch(flow(actions=[move("eth_src", "ipv4_src", 16, 8, 16), output(1)]))
    assert sw.process(PKT, 9).text["ipv4_src"] == "0.0.1.19"  # bits 8..23 of the MAC into bits 16..31
    with pytest.raises(ModelError, match="no arp_tpa"):
        switch(flow(actions=[move("arp_tpa", "reg0", 32)])).process(PKT, 9)


def test_output_to_the_ingress_port_needs_in_port_and_dec_ttl_expires():
    sw = switch(flow(actions=[output(9), parser.OFPActionDecNwTtl(), output(ofp.OFPP_IN_PORT)]))
    result = sw.process(PKT, 9)
    assert result.ports == [9] and result.packet["nw_ttl"] == 63  # the plain output(9) went nowhere
    assert sw.process(dict(PKT, nw_ttl=1), 9).ports == ["drop"]


def test_select_group_asks_the_hook_and_buckets_work_on_copies():
    buckets = [parser.OFPBucket(weight=1, actions=[set_field(ipv4_dst=f"10.0.0.{i}"), output(i)]) for i in (1, 2)]
    sw = Switch(bucket_for=lambda group_id, pkt: 1 if pkt["tcp_src"] % 2 else 0)
    sw.apply([parser.OFPGroupMod(datapath=None, command=ofp.OFPGC_ADD, type_=ofp.OFPGT_SELECT, group_id=5,
                                 buckets=buckets),
              flow(actions=[group(5), output(7)])])
    result = sw.process(PKT, 9)
    assert result.ports == [1, 7] and result.outputs[0].packet["ipv4_dst"] == 0x0A000001
    assert result.text["ipv4_dst"] == "117.78.6.19"  # after the group: the packet as it was
    assert sw.process(dict(PKT, tcp_src=40001), 9).ports == [2, 7]
    # deleting the group deletes the flows that send to it
    sw.apply([parser.OFPGroupMod(datapath=None, command=ofp.OFPGC_DELETE, group_id=5)])
    assert sw.tables[0] == [] and sw.groups == {}


def test_conntrack_recirculates_new_then_committed_with_its_mark():
    sw = switch(flow(table_id=20, priority=10, match={"ct_state": (0, CT_TRK)}, actions=[conntrack(27, table=20)]),
                flow(table_id=20, priority=20, match={"ct_state": (CT_TRK | CT_NEW, CT_TRK | CT_NEW)},
                     actions=[load("reg1", 0x0A0B0C0D, 0, 32), resubmit(25)]),
                flow(table_id=20, priority=30, match={"ct_state": (CT_TRK | CT_EST, CT_TRK | CT_EST),
                                                      "ct_mark": 0x0A0B0C0D}, actions=[output(2)]),
                flow(table_id=25, actions=[conntrack(27, commit=True, mark_from=move("reg1", "ct_mark", 32))],
                     goto=30),
                flow(table_id=30, actions=[output(1)]),
                flow(actions=[], goto=20))
    first = sw.process(PKT, 9)
    assert first.ports == [1] and [h.table for h in first.trace] == [0, 20, 20, 25, 30]
    assert first.packet["ct_state"] == CT_TRK | CT_NEW and sw.conntrack.mark_of(PKT, 27) == 0x0A0B0C0D
    second = sw.process(PKT, 9)
    assert second.ports == [2] and second.packet["ct_mark"] == 0x0A0B0C0D
    assert sw.conntrack.mark_of(PKT, 28) is None  # zones are apart
    with pytest.raises(ModelError, match="may only set ct_mark"):
        Switch().apply([flow(actions=[conntrack(27, commit=True, mark_from=move("reg1", "reg2", 32))])])


def test_serialised_flow_mods_bundles_and_packet_outs():
    mod = flow(match=IP_TCP, actions=[output(1)], cookie=0x42)
    sw = Switch()
    assert sw.apply([RawMessage(serialize(mod), "session")]) == []
    assert sw.tables[0][0].cookie == 0x42 and sw.process(PKT, 9).ports == [1]
    sw = Switch()
    raw = serialize(flow(match=IP_TCP, actions=[output(3)]))
    sw.apply(bundles.bundled([raw], bundle_id=1, min_flow_mods=1))
    assert sw.process(PKT, 9).ports == [3]
    frame = tcp_frame("02:00:00:00:00:01", "02:00:00:00:00:02", "200.1.1.19", "117.78.6.19", 40000, 80)
    (po,) = sw.apply([packet_out_to_table(frame, in_port=9)])
    result = sw.packet_out(po)
    assert po.in_port == 9 and result.ports == [3] and result.trace == [(0, 100, 0)]
    with pytest.raises(ModelError, match="filter"):
        sw.apply([(1, mod)])
