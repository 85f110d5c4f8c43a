"""The balancer's logic with no switch: events in, OpenFlow messages out."""
import ipaddress
from pathlib import Path

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from lbapp.config import load_config
from lbapp.mac import format_mac
from lbapp.pipeline import session
from lbapp.pipeline.fastpath import serialize
from lbapp.pipeline import cookies
from lbapp.pipeline.tables import TABLES
from tests.helpers.reads import table_reads, without_pick_reading
from lbapp.handlers.readings import FlowStat
from lbapp.service import Balancer
from tests.helpers.frames import arp_request, tcp_frame

ROOT = Path(__file__).resolve().parents[2]
CFG = load_config(ROOT / "topologies" / "worked_example.yaml")
IP = ipaddress.IPv4Address
NEW_CONN = cookies.make(cookies.STAGE_SESSION, vip=1)
GW_ARP = cookies.make(cookies.STAGE_CLASSIFY, obj=1)


def fab(msg):
    return format_mac(msg.info["eth_dst"])


def syn(sport):
    return tcp_frame("aa:bb:cc:dd:ee:ff", "02:00:00:00:00:02", "200.1.1.19", "117.78.6.19", sport, 80)


def connected():
    lb = Balancer(CFG)
    out = lb.switch_connected(1, now=0.0)
    return lb, out


def test_connect_sweeps_only_static_stages_then_installs_and_probes():
    _, out = connected()
    msgs = [m for _, m in out]
    deletes = [m for m in msgs if isinstance(m, parser.OFPFlowMod) and m.command == ofp.OFPFC_DELETE]
    assert {cookies.stage_of(m.cookie) for m in deletes} == {1, 2, 4, 5, 7, 8}  # never the session stage
    assert all(m.cookie_mask == cookies.stage_mask() for m in deletes)
    adds = [m for m in msgs if isinstance(m, parser.OFPFlowMod) and m.command == ofp.OFPFC_ADD]
    assert {m.table_id for m in adds} == {0, 10, 20, 25, 30, 40}
    probes = [m for m in msgs if isinstance(m, parser.OFPPacketOut)]
    assert len(probes) == 1 and probes[0].actions[0].port == ofp.OFPP_FLOOD


def test_edge_switch_gets_snat_only_and_unknown_switch_nothing():
    lb = Balancer(CFG)
    adds = [m for _, m in lb.switch_connected(2, 0.0) if getattr(m, "command", None) == ofp.OFPFC_ADD]
    assert {m.table_id for m in adds} == {0, 50}
    assert len([m for m in adds if m.table_id == 50 and m.priority == 100]) == 3
    assert lb.switch_connected(99, 0.0) == []


def test_new_connection_installs_session_and_reinjects_first_packet():
    lb, _ = connected()
    out = lb.packet_in(1, 1, NEW_CONN, syn(40000), now=1.0)
    flow, pkt_out = out[0][1], out[1][1]
    assert flow.info["table_id"] == TABLES["session"].table_id and flow.info["idle_timeout"] == 30
    assert fab(flow) == "aa:bb:0a:0b:0c:0b"
    assert pkt_out.info == {"in_port": 1, "port": ofp.OFPP_TABLE}
    # the bytes are what os-ken would serialise for the same flow (see test_fastpath)
    assert flow.buf == serialize(session.install(flow.info["key"], 1, cookies.decode(flow.info["cookie"]).obj,
                                                 0xAABB0A0B0C0B, 30))
    assert lb.sessions.counts(1) == {IP("10.11.12.11"): 1}


def test_retransmitted_first_packet_keeps_its_backend():
    lb, _ = connected()
    first = lb.packet_in(1, 1, NEW_CONN, syn(40000), 1.0)[0][1]
    again = lb.packet_in(1, 1, NEW_CONN, syn(40000), 1.1)[0][1]
    assert fab(first) == fab(again)
    assert len(lb.sessions) == 1


def test_flow_removed_ends_session_and_frees_backend_count():
    lb, _ = connected()
    flow = lb.packet_in(1, 1, NEW_CONN, syn(40000), 1.0)[0][1]
    lb.flow_removed(1, flow.info['cookie'], ofp.OFPRR_IDLE_TIMEOUT, 40.0)
    assert len(lb.sessions) == 0 and lb.sessions.counts(1) == {}


def test_gateway_arp_rewrites_next_hop_and_a_repeat_does_nothing():
    lb, _ = connected()
    reply = arp_request("aa:bb:cc:dd:ee:ff", "10.0.0.1", "10.0.0.2")
    out = lb.packet_in(1, 3, GW_ARP, reply, 2.0)
    forwards = [m for _, m in out if getattr(m, "command", None) == ofp.OFPFC_ADD]
    assert len(forwards) == 2  # the route, and its in_port=3 variant that outputs IN_PORT
    assert {a.port for m in forwards for a in m.instructions[0].actions if hasattr(a, "port")} == \
        {3, ofp.OFPP_IN_PORT}
    assert lb.packet_in(1, 3, GW_ARP, reply, 3.0) == []


def test_garbage_packet_in_is_counted_not_raised():
    lb, _ = connected()
    assert lb.packet_in(1, 1, NEW_CONN, b"\x00" * 20, 1.0) == []
    assert lb.packet_in(1, 1, NEW_CONN, arp_request("aa:bb:cc:dd:ee:ff", "10.0.0.1", "10.0.0.2"), 1.0) == []
    assert lb.snapshot(1.0)["counters"] == {"bad_packet": 2}


def test_an_unknown_gateway_is_asked_again_soon_and_a_known_one_at_the_interval():
    lb, _ = connected()  # asked at once
    assert without_pick_reading(lb.tick(0.3)) == []
    assert len(without_pick_reading(lb.tick(0.6))) == 1  # no answer yet (an ARP can be lost): again
    lb.packet_in(1, 3, GW_ARP, arp_request("aa:bb:cc:dd:ee:ff", "10.0.0.1", "10.0.0.2"), 0.7)
    assert without_pick_reading(lb.tick(1.2)) == []
    assert without_pick_reading(lb.tick(0.7 + CFG.balancer.probe_interval - 0.1)) == []
    assert len(without_pick_reading(lb.tick(0.7 + CFG.balancer.probe_interval + 0.1))) == 1


def test_a_new_leader_forwards_through_the_next_hops_its_predecessor_learned():
    """A cluster's new leader takes the switch over with the gateway's MAC it inherited (through
    etcd): its route sends to that MAC and port from the first flow, before any ARP is answered."""
    from lbapp.handlers import succession

    old, _ = connected()
    old.packet_in(1, 3, GW_ARP, arp_request("aa:bb:cc:dd:ee:ff", "10.0.0.1", "10.0.0.2"), 1.0)
    shared = succession.findings(old.running, old.checker.checks)
    assert shared["next hop 0000000000000001 router"] == "aa:bb:cc:dd:ee:ff 3"
    new = Balancer(CFG)
    new.inherit(shared, 5.0)
    routes = [m for _, m in new.switch_connected(1, 5.0, relearn=False) if isinstance(m, parser.OFPFlowMod)
              and m.command == ofp.OFPFC_ADD and m.table_id == TABLES["next_hop"].table_id]
    actions = [a for m in routes for i in m.instructions for a in getattr(i, "actions", [])]
    sent = {a.value for a in actions if getattr(a, "key", None) == "eth_dst"}
    ports = {a.port for a in actions if hasattr(a, "port")}
    assert sent == {"aa:bb:cc:dd:ee:ff"} and ports == {3, ofp.OFPP_IN_PORT}
    # what does not parse is left alone: the gateway stays unknown, and is asked for
    garbled = Balancer(CFG)
    for text in ("not-a-mac 3", "01:00:5e:00:00:01 3", "aa:bb:cc:dd:ee:ff 0", "aa:bb:cc:dd:ee:ff 4294967295"):
        garbled.inherit({"next hop 0000000000000001 router": text, "tcp 1.2.3.4:80": "sideways"}, 5.0)
        assert garbled.snapshot(5.0)["balancers"][0]["next_hops"][0]["mac"] is None, text


def _cfg_with(**vip0):
    import yaml

    from lbapp.config import parse_config
    doc = yaml.safe_load((ROOT / "topologies" / "worked_example.yaml").read_text())
    doc["vips"][0].update(vip0)
    doc["edges"][0]["backends"] = [b["ip"] for b in doc["vips"][0]["backends"]]
    return parse_config(doc)


def test_reconfigure_drains_a_backend_and_keeps_sessions_and_next_hops():
    lb, _ = connected()
    lb.packet_in(1, 3, GW_ARP, arp_request("aa:bb:cc:dd:ee:ff", "10.0.0.1", "10.0.0.2"), 1.0)
    first = lb.packet_in(1, 1, NEW_CONN, syn(40000), 2.0)[0][1]  # -> .11
    drained = _cfg_with(backends=[{"ip": "10.11.12.11", "weight": 0}, {"ip": "10.11.12.12"}, {"ip": "10.11.12.13"}])
    out = [m for _, m in lb.reconfigure(drained, 3.0)]
    # no message touches session flows of live connections
    deletes = [m for m in out if isinstance(m, parser.OFPFlowMod) and m.command in (ofp.OFPFC_DELETE,
                                                                                     ofp.OFPFC_DELETE_STRICT)]
    # only the VIP changed: its flows that differ are sent under the same generation, those that
    # went are deleted by their whole cookie (a session's carries generation 0)
    assert all(cookies.decode(m.cookie).generation == 1 and m.cookie_mask == (1 << 64) - 1 for m in deletes)
    assert all(cookies.decode(m.cookie).generation == 1 for m in out
               if isinstance(m, parser.OFPFlowMod) and m.command == ofp.OFPFC_ADD)
    # the learned next hop stays in force: neither sent again nor deleted
    assert not [m for m in out if isinstance(m, parser.OFPFlowMod) and m.table_id == TABLES["next_hop"].table_id]
    pinned = lb.sessions.by_id[cookies.decode(first.info["cookie"]).obj]
    assert len(lb.sessions) == 1 and pinned.backend == IP("10.11.12.11")
    new = {fab(lb.packet_in(1, 1, NEW_CONN, syn(40001 + i), 4.0)[0][1]) for i in range(4)}
    assert new == {"aa:bb:0a:0b:0c:0c", "aa:bb:0a:0b:0c:0d"}  # the drained .11 takes no new connection
    again = lb.packet_in(1, 1, NEW_CONN, syn(40000), 5.0)[0][1]  # the established one stays on .11
    assert fab(again) == "aa:bb:0a:0b:0c:0b"


def test_marked_down_backend_gets_no_new_connections():
    lb = Balancer(_cfg_with(backends=[{"ip": "10.11.12.11", "down": True}, {"ip": "10.11.12.12"}]))
    lb.switch_connected(1, 0.0)
    chosen = {fab(lb.packet_in(1, 1, NEW_CONN, syn(40000 + i), 1.0)[0][1])
              for i in range(4)}
    assert chosen == {"aa:bb:0a:0b:0c:0c"}


def test_dynamic_feedback_gives_a_busy_backend_fewer_connections():
    import yaml

    from lbapp.config import parse_config
    doc = yaml.safe_load((ROOT / "topologies" / "worked_example.yaml").read_text())
    doc["vips"][0]["scheduler"] = "wrr"
    doc["vips"][0]["backends"] = [{"ip": "10.11.12.11"}, {"ip": "10.11.12.12"}]
    doc["edges"][0]["backends"] = ["10.11.12.11", "10.11.12.12"]
    doc["feedback"] = {"interval": 5, "max_step": 0.25}
    lb = Balancer(parse_config(doc))
    lb.switch_connected(1, 0.0)
    flows = [lb.packet_in(1, 1, NEW_CONN, syn(41000 + i), 1.0)[0][1] for i in range(2)]
    by_backend = {fab(f): f.info['cookie'] for f in flows}
    busy, idle = by_backend["aa:bb:0a:0b:0c:0b"], by_backend["aa:bb:0a:0b:0c:0c"]
    for n, now in enumerate((5.0, 10.0, 15.0, 20.0), start=1):
        requests = table_reads(lb.tick(now))
        assert len(requests) == 1 and requests[0].table_id == 20
        # the reply comes in two parts (OVS splits large ones): only the whole counts
        lb.session_stats(1, requests[0].xid, [FlowStat(busy, n * 900_000)], now, more=True)
        lb.session_stats(1, requests[0].xid, [FlowStat(idle, n * 100_000)], now)
    factors = {b["ip"]: b["feedback_factor"] for b in lb.snapshot(20.0)["vips"][0]["backends"]}
    assert factors["10.11.12.11"] < 1.0 < factors["10.11.12.12"]
    assert factors["10.11.12.11"] >= 0.25 ** 1  # bounded: at most 25% per reading, floor 0.25
    picks = [fab(lb.packet_in(1, 1, NEW_CONN, syn(42000 + i), 21.0)[0][1])
             for i in range(40)]
    assert picks.count("aa:bb:0a:0b:0c:0b") < picks.count("aa:bb:0a:0b:0c:0c")


def test_removed_backend_keeps_source_nat_until_its_last_session_ends():
    lb = Balancer(CFG)
    lb.switch_connected(1, 0.0)
    lb.switch_connected(2, 0.0)
    flow = lb.packet_in(1, 1, NEW_CONN, syn(40000), 1.0)[0][1]  # -> 10.11.12.11
    removed = _cfg_with(backends=[{"ip": "10.11.12.12"}, {"ip": "10.11.12.13"}])
    out = lb.reconfigure(removed, 2.0)
    edge_adds = [m for dpid, m in out if dpid == 2 and isinstance(m, parser.OFPFlowMod) and m.command == ofp.OFPFC_ADD]
    lingering = [m for m in edge_adds if cookies.decode(m.cookie).vip == cookies.LINGER_VIP]
    assert {m.table_id for m in lingering} == {0, 50}
    snat_flow = next(m for m in lingering if m.table_id == 50)
    assert snat_flow.match["ipv4_src"] == "10.11.12.11" and snat_flow.match["tcp_src"] == 80
    assert snat_flow.instructions[0].actions[0].value == "117.78.6.19"
    # the balancer keeps the removed backend's pin (connections pinned in conntrack during an
    # overload) until it idles out; the source NAT goes once the last session and the pin have
    pin = next(m for dpid, m in out if dpid == 1 and isinstance(m, parser.OFPFlowMod) and m.table_id == 20
               and cookies.decode(m.cookie).vip == cookies.LINGER_VIP)
    assert lb.flow_removed(1, flow.info['cookie'], ofp.OFPRR_IDLE_TIMEOUT, 30.0) == []
    out = lb.flow_removed(1, pin.cookie, ofp.OFPRR_IDLE_TIMEOUT, 31.0, match=dict(pin.match.items()))
    # the reply's source NAT and the hairpin pair, then the backend's classify flow
    assert [(dpid, m.table_id, m.command) for dpid, m in out] == [(2, 50, ofp.OFPFC_DELETE)] * 3 + [(2, 0, ofp.OFPFC_DELETE)]
    assert lb.snapshot(31.0)["lingering"] == {"source_nat": [], "pins": []}


def test_no_packet_kills_the_controller():
    """Garbage, truncated and mutated frames under every cookie: always a list back, never an
    exception (the app also guards, but the logic itself must hold)."""
    import random

    rng = random.Random(2026)
    lb, _ = connected()
    valid = [syn(40000), arp_request("aa:bb:cc:dd:ee:ff", "10.0.0.1", "10.0.0.2"),
             arp_request("02:00:00:00:00:10", "10.0.0.10", "10.11.12.13")]
    stage_cookies = [NEW_CONN, GW_ARP, cookies.make(cookies.STAGE_ARP_PROXY, obj=1), 0, 0x42,
                     cookies.make(cookies.STAGE_TRANSLATE)]
    for i in range(3000):
        frame = bytearray(rng.choice(valid))
        kind = i % 3
        if kind == 0:
            frame = frame[:rng.randrange(len(frame))]
        elif kind == 1:
            for _ in range(rng.randrange(1, 6)):
                frame[rng.randrange(len(frame))] = rng.randrange(256)
        else:
            frame = bytearray(rng.randbytes(rng.randrange(0, 80)))
        out = lb.packet_in(1, rng.randrange(1, 5), rng.choice(stage_cookies), bytes(frame), float(i))
        assert isinstance(out, list)


def test_a_gateway_arp_with_a_multicast_mac_is_not_learned():
    lb, _ = connected()
    assert lb.packet_in(1, 3, GW_ARP, arp_request("01:00:5e:00:00:01", "10.0.0.1", "10.0.0.2"), 1.0) == []
    state = lb.snapshot(1.0)
    assert state["balancers"][0]["next_hops"][0]["mac"] is None and state["counters"] == {"bad_packet": 1}


def test_a_flow_removed_from_an_earlier_run_does_not_end_this_runs_session():
    lb = Balancer(CFG, first_session_id=1000)
    lb.switch_connected(1, 0.0)
    flow = lb.packet_in(1, 1, NEW_CONN, syn(40000), 1.0)[0][1]
    sid = cookies.decode(flow.info["cookie"]).obj
    assert sid == 1000
    stale = cookies.make(cookies.STAGE_SESSION, vip=2, obj=sid)  # same id, another VIP: an old run's flow
    lb.flow_removed(1, stale, ofp.OFPRR_IDLE_TIMEOUT, 2.0)
    assert len(lb.sessions) == 1


def test_a_vip_address_change_does_not_leave_an_old_source_nat_shadowing_the_new():
    lb = Balancer(CFG)
    lb.switch_connected(1, 0.0)
    lb.switch_connected(2, 0.0)
    lb.packet_in(1, 1, NEW_CONN, syn(40000), 1.0)
    out = lb.reconfigure(_cfg_with(ip="117.78.6.20"), 2.0)
    assert lb.snapshot(2.0)["lingering"]["source_nat"] == []
    snat = [m for dpid, m in out if dpid == 2 and m.table_id == 50 and m.command == ofp.OFPFC_ADD and m.priority == 100]
    assert {m.instructions[0].actions[0].value for m in snat} == {"117.78.6.20"}
    hairpin = [m for dpid, m in out if dpid == 2 and m.table_id == 50 and m.command == ofp.OFPFC_ADD and m.priority == 200]
    assert {str(m.match["ipv4_dst"]) for m in hairpin if "tcp_src" in m.match} == {"117.78.6.20"}


def test_an_edge_left_only_with_lingering_flows_keeps_its_table_miss():
    import yaml

    from lbapp.config import parse_config
    doc = yaml.safe_load((ROOT / "topologies" / "worked_example.yaml").read_text())
    doc["edges"] = [{"name": "e2", "dpid": 2, "backends": ["10.11.12.12", "10.11.12.13"]},
                    {"name": "e3", "dpid": 3, "backends": ["10.11.12.11"]}]
    lb = Balancer(parse_config(doc))
    for dpid in (1, 2, 3):
        lb.switch_connected(dpid, 0.0)
    lb.packet_in(1, 1, NEW_CONN, syn(40000), 1.0)  # -> .11, behind edge 3
    doc["edges"] = doc["edges"][:1]
    doc["vips"][0]["backends"] = [{"ip": "10.11.12.12"}, {"ip": "10.11.12.13"}]
    out = lb.reconfigure(parse_config(doc), 2.0)
    adds = [(m.table_id, m.priority) for dpid, m in out if dpid == 3 and m.command == ofp.OFPFC_ADD]
    assert (0, 0) in adds and (50, 0) in adds and (50, 100) in adds


def test_reordering_vips_keeps_each_vips_sessions_and_counts():
    import yaml

    from lbapp.config import parse_config
    doc = yaml.safe_load((ROOT / "topologies" / "worked_example.yaml").read_text())
    doc["vips"][0]["scheduler"] = "lc"
    doc["vips"].append(dict(doc["vips"][0], name="alt", port=81))
    lb = Balancer(parse_config(doc))
    lb.switch_connected(1, 0.0)
    flows = [lb.packet_in(1, 1, NEW_CONN, syn(40000 + i), 1.0)[0][1] for i in range(3)]  # port 80: vip 1

    def sessions(now):
        return {v["name"]: (v["id"], v["sessions"]) for v in lb.snapshot(now)["vips"]}

    assert sessions(1.0) == {"web": (1, 3), "alt": (2, 0)}
    doc["vips"].reverse()
    lb.reconfigure(parse_config(doc), 2.0)
    assert sessions(2.0) == {"alt": (2, 0), "web": (1, 3)}  # ids stay with their VIPs
    # a new VIP ("alt" above web in the file) is still taken by the id web holds: no
    assert all(cookies.decode(m.cookie).vip == 1 for _, m in lb.switch_connected(1, 2.5)
               if isinstance(m, parser.OFPFlowMod) and m.table_id == 0 and m.priority == 200
               and m.match["tcp_dst"] == 80)
    lb.flow_removed(1, flows[0].info["cookie"], ofp.OFPRR_IDLE_TIMEOUT, 3.0)
    assert sessions(3.0)["web"] == (1, 2)


def test_a_removed_vips_sessions_do_not_count_for_a_new_vip_that_takes_its_id():
    import yaml

    from lbapp.config import parse_config
    doc = yaml.safe_load((ROOT / "topologies" / "worked_example.yaml").read_text())
    doc["vips"][0]["scheduler"] = "lc"
    lb = Balancer(parse_config(doc))
    lb.switch_connected(1, 0.0)
    flows = [lb.packet_in(1, 1, NEW_CONN, syn(40000 + i), 1.0)[0][1] for i in range(3)]
    doc["vips"][0].update(name="other", port=81)  # web (id 1) goes, other comes: it gets the free id 1
    lb.reconfigure(parse_config(doc), 2.0)
    assert [(v["name"], v["id"], v["sessions"]) for v in lb.snapshot(2.0)["vips"]] == [("other", 1, 0)]
    lb.flow_removed(1, flows[0].info["cookie"], ofp.OFPRR_IDLE_TIMEOUT, 3.0)  # web's session ends
    assert lb.snapshot(3.0)["vips"][0]["sessions"] == 0 and lb.snapshot(3.0)["sessions"] == 2


def test_a_switch_dropped_from_the_config_loses_its_static_flows_on_reload():
    import yaml

    from lbapp.config import parse_config
    lb = Balancer(CFG)
    lb.switch_connected(2, 0.0)  # the edge
    doc = yaml.safe_load((ROOT / "topologies" / "worked_example.yaml").read_text())
    doc["edges"][0]["dpid"] = 7
    out = [m for dpid, m in lb.reconfigure(parse_config(doc), 1.0) if dpid == 2]
    assert out and all(m.command == ofp.OFPFC_DELETE and cookies.decode(m.cookie).generation == 1 for m in out)
    assert {m.table_id for m in out} == {0, 10, 15, 20, 25, 30, 40, 50, 60}  # generation 1 only: entries (0) stay


def _groups(out, command=None):
    return [m for _, m in out if isinstance(m, parser.OFPGroupMod) and (command is None or m.command == command)]


def _bucket_macs(group):
    return [b.actions[1].value for b in group.buckets]  # set eth_dst


def test_switch_selection_installs_a_group_the_vip_flow_sends_to():
    lb = Balancer(_cfg_with(selection="switch", scheduler="mh"))
    out = lb.switch_connected(1, 0.0)
    msgs = [m for _, m in out]
    delete, add = _groups(out)
    assert (delete.command, add.command) == (ofp.OFPGC_DELETE, ofp.OFPGC_ADD)  # an earlier run's group goes
    assert add.type == ofp.OFPGT_SELECT and add.group_id == 0x1B000001
    assert msgs.index(add) < min(i for i, m in enumerate(msgs) if isinstance(m, parser.OFPFlowMod)
                                 and m.command == ofp.OFPFC_ADD)  # the group exists before a flow uses it
    macs = _bucket_macs(add)
    assert len(macs) == 256 and {macs.count(m) for m in set(macs)} <= {85, 86} and len(set(macs)) == 3
    for bucket in add.buckets:  # the picked backend in reg1 and eth_dst, then the pin stage
        picked, set_mac, resubmit = bucket.actions
        assert picked.dst == "reg1" and set_mac.value == format_mac(CFG.mac_scheme().encode(IP(picked.value)))
        assert bucket.weight == 1 and resubmit.table_id == TABLES["pin"].table_id
    (commit,) = [m for m in msgs if isinstance(m, parser.OFPFlowMod) and m.table_id == 25 and m.priority == 100]
    ct = commit.instructions[0].actions[0]
    assert ct.flags == 1 and ct.zone_ofs_nbits == 0x1B and ct.recirc_table == 255  # commit, no recirculation
    assert (ct.actions[0].src_field, ct.actions[0].dst_field) == ("reg1", "ct_mark")
    assert commit.instructions[1].table_id == TABLES["translate"].table_id
    vip = {m.priority: m for m in msgs if isinstance(m, parser.OFPFlowMod) and m.table_id == 20 and m.priority}
    track, pick = vip[10].instructions[0].actions[0], vip[20].instructions[0].actions[0]
    assert vip[10].match["ct_state"] == (0, 0x20) and (track.recirc_table, track.flags) == (20, 0)
    assert vip[20].match["ct_state"] == (0x20, 0x20) and pick.group_id == 0x1B000001
    pinned = [m for m in msgs if isinstance(m, parser.OFPFlowMod) and m.table_id == 20 and m.priority == 30]
    assert sorted(ipaddress.IPv4Address(m.match["ct_mark"]) for m in pinned) == \
        [IP("10.11.12.11"), IP("10.11.12.12"), IP("10.11.12.13")]
    # no packet-in comes for this VIP; one that does anyway (a reload race) is ignored, not scheduled
    assert lb.packet_in(1, 1, NEW_CONN, syn(40000), 1.0) == [] and len(lb.sessions) == 0


def test_switch_selection_reload_moves_only_the_removed_backends_slots():
    lb = Balancer(_cfg_with(selection="switch", scheduler="mh"))
    before = _bucket_macs(_groups(lb.switch_connected(1, 0.0), ofp.OFPGC_ADD)[0])
    out = lb.reconfigure(_cfg_with(selection="switch", scheduler="mh",
                                   backends=[{"ip": "10.11.12.11"}, {"ip": "10.11.12.13"}]), 1.0)
    (modify,) = _groups(out)
    assert modify.command == ofp.OFPGC_MODIFY
    after = _bucket_macs(modify)
    changed = [i for i in range(256) if before[i] != after[i]]
    assert changed == [i for i in range(256) if before[i] == "aa:bb:0a:0b:0c:0c"]
    assert "aa:bb:0a:0b:0c:0c" not in after
    # back to the controller: the group stays (for an overload), with the backend back in it
    out = lb.reconfigure(_cfg_with(), 2.0)
    (kept,) = _groups(out)
    assert kept.command == ofp.OFPGC_MODIFY and "aa:bb:0a:0b:0c:0c" in _bucket_macs(kept)
    assert lb.packet_in(1, 1, NEW_CONN, syn(40001), 3.0)  # the controller schedules again


def test_switch_selection_with_every_backend_drained_drops_new_connections():
    from tests.helpers.oftables import Switch
    lb = Balancer(_cfg_with(selection="switch", scheduler="mh"))
    switch = Switch()
    switch.apply(m for _, m in lb.switch_connected(1, 0.0))
    doc_drained = _cfg_with(selection="switch", scheduler="mh",
                            backends=[{"ip": "10.11.12.11", "weight": 0}, {"ip": "10.11.12.12", "down": True},
                                      {"ip": "10.11.12.13"}])
    out = lb.reconfigure(doc_drained, 1.0)
    switch.apply(m for _, m in out)
    (modify,) = _groups(out)
    assert set(_bucket_macs(modify)) == {"aa:bb:0a:0b:0c:0d"}
    # the drained and the down backend keep the connections pinned to them
    assert len([f for f in switch.tables[TABLES["session"].table_id] if f.priority == TABLES["session"].priority("pinned")]) == 3
    # with no backend left to pick (the config refuses that; health checks will not), the group
    # has no bucket: new connections drop
    from lbapp.pipeline.context import Context
    assert session.selection_group(Context(doc_drained, doc_drained.balancer), 1, [None] * 256,
                                   ofp.OFPGC_MODIFY).buckets == []


def test_a_backend_removed_from_a_switch_vip_keeps_its_pin_and_source_nat_until_idle():
    lb = Balancer(_cfg_with(selection="switch", scheduler="mh"))
    lb.switch_connected(1, 0.0)
    lb.switch_connected(2, 0.0)
    out = lb.reconfigure(_cfg_with(selection="switch", scheduler="mh",
                                   backends=[{"ip": "10.11.12.11"}, {"ip": "10.11.12.13"}]), 1.0)
    pins = [m for d, m in out if d == 1 and isinstance(m, parser.OFPFlowMod) and m.table_id == 20
            and m.command == ofp.OFPFC_ADD and m.idle_timeout]
    (pin,) = pins
    assert pin.match["ct_mark"] == int(IP("10.11.12.12")) and pin.flags & ofp.OFPFF_SEND_FLOW_REM
    assert pin.idle_timeout == lb.cfg.vips[0].idle_timeout and cookies.decode(pin.cookie).generation == 0  # never swept
    edge = [m for d, m in out if d == 2 and isinstance(m, parser.OFPFlowMod) and m.command == ofp.OFPFC_ADD
            and cookies.decode(m.cookie).vip == cookies.LINGER_VIP]
    assert {m.table_id for m in edge} == {0, 50}  # the edge still sends .12's replies out as the VIP
    # a balancer that reconnects meanwhile gets the pin again (it may have lost it)
    again = [m for _, m in lb.switch_connected(1, 20.0) if getattr(m, "cookie", None) == pin.cookie]
    assert len(again) == 1 and again[0].match["ct_mark"] == int(IP("10.11.12.12"))
    # the pin idles out: the lingering source NAT goes with it
    match = dict(pin.match.items())
    gone = lb.flow_removed(1, pin.cookie, ofp.OFPRR_IDLE_TIMEOUT, 30.0, match=match)
    assert {(d, m.table_id, m.command) for d, m in gone} == {(2, 50, ofp.OFPFC_DELETE), (2, 0, ofp.OFPFC_DELETE)}
    assert lb.snapshot(30.0)["lingering"] == {"source_nat": [], "pins": []}
    assert lb.flow_removed(1, pin.cookie, ofp.OFPRR_IDLE_TIMEOUT, 31.0, match=match) == []  # a repeat: nothing



def _stat_of(flow_mod, byte_count=0, duration=5.0):
    """What a flow statistics reply says about an installed session flow."""
    msg = parser.OFPFlowMod.parser(None, 4, 14, len(flow_mod.buf), 0, flow_mod.buf)
    eth_dst = msg.instructions[0].actions[0].value
    return FlowStat(msg.cookie, byte_count, duration, tuple(msg.match.items()), eth_dst)


def test_a_restarted_controller_takes_back_the_sessions_in_the_switch():
    first, _ = connected()
    flows = [first.packet_in(1, 1, NEW_CONN, syn(43000 + i), 1.0)[0][1] for i in range(3)]
    # a new controller run: it asks the switch for its session table when the switch connects
    lb = Balancer(_cfg_with(scheduler="lc"), first_session_id=999)
    out = lb.switch_connected(1, 10.0)
    (request,) = table_reads(out)
    assert request.table_id == 20
    static = [m for _, m in out if isinstance(m, parser.OFPFlowMod) and m.table_id == 20]
    lb.session_stats(1, request.xid, [_stat_of(f) for f in flows] + [FlowStat(static[0].cookie, 0)], 10.0)
    assert len(lb.sessions) == 3 and {s.session_id for s in lb.sessions.by_id.values()} == \
        {cookies.decode(f.info["cookie"]).obj for f in flows}
    assert sum(lb.sessions.counts(1).values()) == 3  # least-connection counts see them again
    # the same connection's retransmitted first packet keeps its backend; its flow-removed ends it
    again = lb.packet_in(1, 1, NEW_CONN, syn(43001), 11.0)[0][1]
    assert fab(again) == fab(flows[1])
    lb.flow_removed(1, flows[0].info["cookie"], ofp.OFPRR_IDLE_TIMEOUT, 40.0)
    assert len(lb.sessions) == 2
    # the same reply again (or one to another request) takes nothing back twice
    lb.session_stats(1, request.xid, [_stat_of(f) for f in flows], 50.0)
    assert len(lb.sessions) == 2


def test_sessions_whose_flows_vanished_while_the_switch_was_away_stop_counting():
    lb = Balancer(_cfg_with(scheduler="lc"))
    lb.switch_connected(1, 0.0)
    flows = [lb.packet_in(1, 1, NEW_CONN, syn(47000 + i), 1.0)[0][1] for i in range(3)]
    lb.switch_disconnected(1)  # meanwhile two of the flows idle out: their flow-removed is lost
    out = lb.switch_connected(1, 20.0)
    (request,) = table_reads(out)
    late = lb.packet_in(1, 1, NEW_CONN, syn(47010), 20.5)[0][1]  # after the request: not in its reply
    lb.session_stats(1, request.xid, [_stat_of(flows[0])], 21.0, more=True)
    assert lb.snapshot(21.0)["sessions"] == 4  # a part of the reply decides nothing
    lb.session_stats(1, request.xid, [FlowStat(session.KEPT_COOKIE, 0)], 21.0)  # it kept its table
    left = {s.session_id for s in lb.sessions.by_id.values()}
    assert left == {cookies.decode(flows[0].info["cookie"]).obj, cookies.decode(late.info["cookie"]).obj}
    assert lb.snapshot(21.0)["vips"][0]["sessions"] == 2  # least-connection counts follow the switch


def test_each_balancers_session_table_is_read_whole_every_minute():
    lb, _ = connected()
    reads = lambda now: table_reads(lb.tick(now))  # noqa: E731
    assert reads(30.0) == [] and len(reads(61.0)) == 1 and reads(90.0) == [] and len(reads(121.5)) == 1


def test_a_select_group_serialises_as_os_ken_does_with_a_bucket_per_slot():
    """Each backend's bucket is made and serialised once (it fills many of the 256 slots): the
    bytes are still those of 256 buckets built one by one."""
    from lbapp.pipeline.actions import load, resubmit, set_field
    from lbapp.pipeline.context import Context
    from lbapp.pipeline.tables import REG_PICKED
    ctx = Context(CFG, CFG.balancer)
    slots = [IP(f"10.11.12.1{1 + i % 3}") for i in range(256)]
    group = session.selection_group(ctx, 1, slots, ofp.OFPGC_ADD)
    one_by_one = parser.OFPGroupMod(datapath=None, command=ofp.OFPGC_ADD, type_=ofp.OFPGT_SELECT, group_id=group.group_id,
                                    buckets=[parser.OFPBucket(weight=1, actions=[
                                        load(REG_PICKED, int(ip), 0, 32), set_field(eth_dst=fab_of(ctx, ip)),
                                        resubmit(TABLES["pin"].table_id)]) for ip in slots])
    expected = serialize(one_by_one)
    assert serialize(group) == expected and len(expected) > 256 * 40


def fab_of(ctx, ip):
    return format_mac(ctx.scheme.encode(ip))
