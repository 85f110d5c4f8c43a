"""The send policy: what fake datapaths receive from :class:`lbapp.sender.Sender`."""
import struct

from os_ken.ofproto import ofproto_common, ofproto_parser
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from lbapp.pipeline import bundles
from lbapp.pipeline.fastpath import RawMessage, _Datapath, serialize
from lbapp.sender import Sender


class FakeDatapath:
    """Records each write, in one log shared by all switches: (name, bytes) for ``send``,
    (name, message) for ``send_msg``."""

    def __init__(self, name: str, log: list) -> None:
        self.name, self.log = name, log

    def send(self, buf: bytes) -> None:
        assert isinstance(buf, bytes)
        self.log.append((self.name, buf))

    def send_msg(self, msg) -> None:
        assert msg.datapath is self  # attached before the send
        self.log.append((self.name, msg))


def flow_mod(n: int) -> RawMessage:
    buf = serialize(parser.OFPFlowMod(datapath=None, cookie=n, table_id=20, priority=100,
                                      match=parser.OFPMatch(eth_type=0x800)))
    return RawMessage(buf[:4] + struct.pack("!I", n) + buf[8:], "session")  # xid n, as the hot path's differ


def packet_out(n: int) -> RawMessage:
    return RawMessage(serialize(parser.OFPPacketOut(datapath=None, buffer_id=ofp.OFP_NO_BUFFER, in_port=n,
                                                    actions=[], data=bytes([n]) * 60)), "packet_out")


def barrier():
    return parser.OFPBarrierRequest(None)


def split(buf: bytes) -> list[bytes]:
    """One write as the OpenFlow messages in it."""
    msgs, at = [], 0
    while at < len(buf):
        length = struct.unpack_from("!H", buf, at + 2)[0]
        assert length >= 8
        msgs.append(buf[at:at + length])
        at += length
    assert at == len(buf)
    return msgs


def decode(msg: bytes):
    """An ONF bundle message as ("open"/"commit", bundle id) or ("add", bundle id, inner bytes),
    decoded by os-ken's parser; anything else as its bytes."""
    version, msg_type, length, xid = struct.unpack_from("!BBHI", msg)
    if msg_type != ofp.OFPT_EXPERIMENTER:
        return msg
    parsed = ofproto_parser.msg(_Datapath(), version, msg_type, length, xid, msg)
    if isinstance(parsed, parser.ONFBundleCtrlMsg):
        assert parsed.flags == bundles.FLAGS and parsed.xid == parsed.bundle_id
        kind = {ofp.ONF_BCT_OPEN_REQUEST: "open", ofp.ONF_BCT_COMMIT_REQUEST: "commit"}[parsed.type]
        return kind, parsed.bundle_id
    # os-ken parses no ONFBundleAddMsg: it comes back as an OFPExperimenter with the body as data
    assert parsed.experimenter == ofproto_common.ONF_EXPERIMENTER_ID and parsed.exp_type == ofp.ONF_ET_BUNDLE_ADD_MESSAGE
    bundle_id, _pad, flags = struct.unpack_from("!IHH", parsed.data)
    inner = parsed.data[8:]
    assert flags == bundles.FLAGS and struct.unpack_from("!I", inner, 4)[0] == xid  # outer xid = inner xid
    return "add", bundle_id, inner


def setup(*names: str, **kwargs):
    log: list = []
    dps = {i + 1: FakeDatapath(name, log) for i, name in enumerate(names)}
    return Sender(dps, **kwargs), dps, log


def test_consecutive_raw_messages_to_one_switch_are_one_write_in_order():
    sender, _, log = setup("s1", bundle_min=0)
    out = [flow_mod(1), packet_out(1), flow_mod(2), packet_out(2)]
    sender.add([(1, m) for m in out])
    assert log == [("s1", b"".join(m.buf for m in out))]


def test_raw_messages_to_two_switches_are_not_merged():
    sender, _, log = setup("s1", "s2", bundle_min=0)
    sender.add([(1, flow_mod(1)), (2, flow_mod(2)), (2, packet_out(2)), (1, packet_out(1))])
    assert log == [("s1", flow_mod(1).buf), ("s2", flow_mod(2).buf + packet_out(2).buf), ("s1", packet_out(1).buf)]


def test_a_parser_message_between_raw_runs_splits_them():
    sender, dps, log = setup("s1", "s2", bundle_min=0)
    b1, b2 = barrier(), barrier()
    sender.add([(1, flow_mod(1)), (1, packet_out(1)), (1, b1), (1, flow_mod(2)), (2, b2), (2, packet_out(2))])
    assert log == [("s1", flow_mod(1).buf + packet_out(1).buf), ("s1", b1), ("s1", flow_mod(2).buf),
                   ("s2", b2), ("s2", packet_out(2).buf)]
    assert b1.datapath is dps[1] and b2.datapath is dps[2]


def test_replies_are_held_while_more_events_wait_and_sent_when_none_do():
    sender, _, log = setup("s1", burst=100, bundle_min=0)
    sender.add([(1, flow_mod(1)), (1, packet_out(1))], more_waiting=True)
    sender.add([(1, flow_mod(2)), (1, packet_out(2))], more_waiting=True)
    assert log == []
    sender.add([], more_waiting=True)
    assert log == []
    sender.add([(1, flow_mod(3))], more_waiting=False)  # the queue ran dry: everything, in order, one write
    assert log == [("s1", b"".join(m.buf for m in (flow_mod(1), packet_out(1), flow_mod(2), packet_out(2),
                                                   flow_mod(3))))]
    sender.add([(1, packet_out(3))])  # an idle controller sends at once
    assert log[1:] == [("s1", packet_out(3).buf)]


def test_held_replies_are_sent_when_burst_is_reached():
    sender, _, log = setup("s1", burst=3, bundle_min=0)
    sender.add([(1, flow_mod(1))], more_waiting=True)
    sender.add([(1, flow_mod(2))], more_waiting=True)
    assert log == []
    sender.add([(1, flow_mod(3))], more_waiting=True)
    assert log == [("s1", flow_mod(1).buf + flow_mod(2).buf + flow_mod(3).buf)]
    sender.add([(1, flow_mod(4)), (1, flow_mod(5)), (1, flow_mod(6))], more_waiting=True)  # one call over burst
    assert log[1:] == [("s1", flow_mod(4).buf + flow_mod(5).buf + flow_mod(6).buf)]


def test_burst_one_sends_each_at_once():
    sender, _, log = setup("s1", burst=1, bundle_min=0)
    sender.add([(1, flow_mod(1))], more_waiting=True)
    sender.add([(1, flow_mod(2))], more_waiting=True)
    assert log == [("s1", flow_mod(1).buf), ("s1", flow_mod(2).buf)]


def test_flush_sends_the_held_replies():
    sender, _, log = setup("s1", bundle_min=0)
    sender.add([(1, flow_mod(1))], more_waiting=True)
    assert log == []
    sender.flush()
    assert log == [("s1", flow_mod(1).buf)]
    sender.flush()  # nothing held: nothing written
    assert len(log) == 1


def test_a_big_enough_run_goes_as_one_bundle_committed_before_its_packet_outs():
    sender, _, log = setup("s1", bundle_min=3)
    out = [m for n in (1, 2, 3) for m in (flow_mod(n), packet_out(n))]
    sender.add([(1, m) for m in out])
    assert len(log) == 1 and log[0][0] == "s1"
    first = [decode(m) for m in split(log[0][1])]
    bundle_id = first[0][1]
    assert first == ([("open", bundle_id)] + [("add", bundle_id, flow_mod(n).buf) for n in (1, 2, 3)]
                     + [("commit", bundle_id)] + [packet_out(n).buf for n in (1, 2, 3)])

    sender.add([(1, m) for m in out])  # the next burst: a bundle under another id
    second = [decode(m) for m in split(log[1][1])]
    assert second[0][0] == "open" and second[0][1] != bundle_id
    assert second[4] == ("commit", second[0][1])


def test_runs_below_bundle_min_and_bundle_min_zero_are_not_bundled():
    sender, _, log = setup("s1", bundle_min=4)
    sender.add([(1, flow_mod(1)), (1, packet_out(1)), (1, flow_mod(2))])  # 3 messages < 4
    sender.add([(1, flow_mod(1)), (1, packet_out(1)), (1, packet_out(2)), (1, flow_mod(2))])  # 2 flow-mods < 4
    assert log == [("s1", flow_mod(1).buf + packet_out(1).buf + flow_mod(2).buf),
                   ("s1", flow_mod(1).buf + packet_out(1).buf + packet_out(2).buf + flow_mod(2).buf)]

    sender, _, log = setup("s1", bundle_min=0)
    out = [flow_mod(n) for n in range(1, 301)]
    sender.add([(1, m) for m in out])
    assert log == [("s1", b"".join(m.buf for m in out))]


def test_a_bundle_is_per_run_so_a_split_run_may_not_bundle():
    sender, _, log = setup("s1", "s2", bundle_min=2)
    sender.add([(1, flow_mod(1)), (2, flow_mod(2)), (1, flow_mod(3)), (1, flow_mod(4))])
    assert log[0] == ("s1", flow_mod(1).buf) and log[1] == ("s2", flow_mod(2).buf)
    assert [decode(m)[0] for m in split(log[2][1])] == ["open", "add", "add", "commit"]


def test_messages_for_a_switch_not_connected_are_dropped_and_the_rest_sent():
    sender, dps, log = setup("s1", bundle_min=0)
    b = barrier()
    sender.add([(1, flow_mod(1)), (9, flow_mod(9)), (1, packet_out(1)), (9, b), (9, packet_out(9))])
    assert log == [("s1", flow_mod(1).buf + packet_out(1).buf)]  # the dropped message does not split the run
    dps[9] = FakeDatapath("s9", log)  # the mapping is read at each send: a switch that connects later
    sender.add([(9, flow_mod(9))])
    assert log[1:] == [("s9", flow_mod(9).buf)]


def test_the_datapath_lookup_may_be_a_callable():
    log: list = []
    s1 = FakeDatapath("s1", log)
    sender = Sender(lambda dpid: s1 if dpid == 1 else None, bundle_min=0)
    b = barrier()
    sender.add([(1, flow_mod(1)), (2, packet_out(2)), (1, b)])
    assert log == [("s1", flow_mod(1).buf), ("s1", b)]


def test_setup_latency_runs_from_each_packet_ins_arrival_to_the_send_of_its_replies():
    import time

    log, observed = [], []
    sender = Sender({1: FakeDatapath("s1", log)}, burst=8, setup_latency=observed.append)
    arrived = time.perf_counter()
    sender.add([(1, flow_mod(1)), (1, packet_out(1))], more_waiting=True, started=arrived - 0.002)
    sender.add([(1, flow_mod(2))], more_waiting=True)  # not a new connection: nothing to observe
    assert observed == [] and log == []  # held, not sent: not set up yet
    sender.add([(1, flow_mod(3)), (1, packet_out(3))], more_waiting=False, started=arrived)
    assert len(log) == 1 and len(observed) == 2  # one write, two setups done with it
    assert observed[0] >= 0.002 and 0 <= observed[1] < observed[0]
    sender.add([(1, flow_mod(4))], started=time.perf_counter())
    assert len(observed) == 3


class XidDatapath(FakeDatapath):
    """A datapath that numbers messages as os-ken's does (the sender serialises them itself)."""

    ofproto, ofproto_parser = ofp, parser
    xid = 0x100

    def set_xid(self, msg) -> None:
        self.xid += 1
        msg.set_xid(self.xid)


def test_a_takeover_goes_meters_first_then_groups_and_flows_in_one_bundle_then_the_rest():
    """A cluster's new leader replaces the pipeline with no gap: the group delete and re-add and
    the flow sweep and adds commit together; OVS bundles no meter-mod, so those go first."""
    log = []
    dp = XidDatapath("s1", log)
    meter = parser.OFPMeterMod(None, command=ofp.OFPMC_ADD, flags=ofp.OFPMF_PKTPS, meter_id=0x1C,
                               bands=[parser.OFPMeterBandDrop(rate=1000)])
    group_del = parser.OFPGroupMod(None, command=ofp.OFPGC_DELETE, group_id=7)
    sweep = parser.OFPFlowMod(None, table_id=0, command=ofp.OFPFC_DELETE, out_port=ofp.OFPP_ANY,
                              out_group=ofp.OFPG_ANY, match=parser.OFPMatch())
    stats = parser.OFPFlowStatsRequest(None, table_id=20)
    Sender({1: dp}).send_atomic([(1, group_del), (1, sweep), (1, meter), (1, flow_mod(3)), (1, stats),
                                 (1, packet_out(4))])
    [(name, buf)] = log
    msgs = [decode(m) for m in split(buf)]
    assert msgs[0][1] == ofp.OFPT_METER_MOD
    assert msgs[1][0] == "open" and msgs[5] == ("commit", msgs[1][1])
    assert [m[0] for m in msgs[2:5]] == ["add"] * 3
    assert [m[2][1] for m in msgs[2:5]] == [ofp.OFPT_GROUP_MOD, ofp.OFPT_FLOW_MOD, ofp.OFPT_FLOW_MOD]  # in order
    assert [m[1] for m in msgs[6:]] == [ofp.OFPT_MULTIPART_REQUEST, ofp.OFPT_PACKET_OUT]
