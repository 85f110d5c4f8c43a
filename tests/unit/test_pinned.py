"""``pin: conntrack``: the controller picks, one packet-out pins the connection in conntrack, and
live counts come from the switch's counting flows, read once per epoch (lbapp.state.pinned)."""
import ipaddress
from collections import Counter

import pytest
import yaml
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from lbapp.config import parse_config
from lbapp.pipeline import cookies, session
from lbapp.pipeline.fastpath import serialize
from lbapp.pipeline.tables import TABLES
from lbapp.handlers.readings import FlowStat
from lbapp.service import Balancer
from lbapp.snapshot import NotListed, sessions_of
from lbapp.state.pinned import EPOCH_LIMIT, PinnedCounts, following
from tests.helpers.reads import table_reads
from tests.unit.test_service import NEW_CONN, ROOT, _cfg_with, syn

IP = ipaddress.IPv4Address
B1, B2, B3 = IP("10.11.12.11"), IP("10.11.12.12"), IP("10.11.12.13")
SESSION = TABLES["session"]


def balancer(scheduler="lc"):
    lb = Balancer(_cfg_with(pin="conntrack", scheduler=scheduler, idle_timeout=10))
    lb.switch_connected(1, now=0.0)
    return lb


def test_a_new_connection_costs_one_packet_out_that_pins_it_and_no_flow_mod():
    lb = balancer()
    out = lb.packet_in(1, 3, NEW_CONN, syn(40000), now=1.0)
    assert len(out) == 1
    msg = out[0][1]
    backend = msg.info["backend"]
    # what os-ken serialises: reg1 = the backend, eth_dst = its fabricated MAC, resubmit to pin
    assert msg.buf == serialize(session.pick_packet_out(backend, lb.running.ctx.scheme.encode(backend), 3,
                                                        syn(40000)))
    assert lb.sessions.counts(1) == {backend: 1} and len(lb.sessions) == 0


def test_least_connection_spreads_by_the_picks_of_the_current_epoch():
    lb = balancer("lc")
    picked = Counter(lb.packet_in(1, 3, NEW_CONN, syn(40000 + i), now=1.0)[0][1].info["backend"] for i in range(9))
    assert picked == {B1: 3, B2: 3, B3: 3}


def _epoch_messages(out):
    """The epoch's readings (not the overload hand-over's, sent every second) and flow-mods."""
    reads = table_reads(out)
    mods = [m for _, m in out if isinstance(m, parser.OFPFlowMod) and m.table_id == SESSION.table_id]
    return reads, mods


def test_an_epoch_ends_with_a_reading_then_the_pins_move_to_the_next_epoch():
    lb = balancer()
    assert lb.running.epochs == {1: 1}
    assert _epoch_messages(lb.tick(5.0)) == ([], [])
    reads, mods = _epoch_messages(lb.tick(10.5))
    assert lb.running.epochs == {1: 2}
    assert len(reads) == 1 and reads[0].cookie_mask == cookies.vip_mask()
    adds = [m for m in mods if m.command == ofp.OFPFC_ADD]
    deletes = [m for m in mods if m.command == ofp.OFPFC_DELETE_STRICT]
    assert {m.priority for m in adds} == {SESSION.priority("pinned"), SESSION.priority("pinned_seen")}
    assert len(adds) == 6 and len(deletes) == 3  # per backend: the counting flow, its copy; the old copy goes
    assert {dict(m.match.items())["ct_label"] for m in adds if m.priority == SESSION.priority("pinned_seen")} \
        == {(2, 0xFFFFFFFF)}
    assert {dict(m.match.items())["ct_label"] for m in deletes} == {(1, 0xFFFFFFFF)}


def _reading(lb, xid, counts, now):
    stats = [FlowStat(cookies.make(cookies.STAGE_SESSION, generation=lb.running.generation, vip=1,
                                   obj=lb.running.ctx.backend_ids[ip]), 0, packet_count=n,
                      priority=SESSION.priority("pinned")) for ip, n in counts.items()]
    stats.append(FlowStat(stats[0].cookie | session.EPOCH_COPY, 0, packet_count=999,
                          priority=SESSION.priority("pinned_seen")))
    return lb.session_stats(1, xid, stats, now)


def test_live_counts_follow_what_the_switch_saw_in_the_last_epoch_plus_new_picks():
    lb = balancer("rr")
    for i in range(3):
        lb.packet_in(1, 3, NEW_CONN, syn(40000 + i), now=1.0)  # one each
    reads, _ = _epoch_messages(lb.tick(10.5))
    assert lb.sessions.counts(1) == {B1: 1, B2: 1, B3: 1}  # picked in the epoch, not read yet
    _reading(lb, reads[0].xid, {B1: 5, B2: 0, B3: 1}, 10.6)
    assert lb.sessions.counts(1) == {B1: 5, B3: 1}
    lb.packet_in(1, 3, NEW_CONN, syn(41000), now=11.0)
    assert sum(lb.sessions.counts(1).values()) == 7
    reads, _ = _epoch_messages(lb.tick(21.0))
    _reading(lb, reads[0].xid, {B1: 7, B2: 0, B3: 1}, 21.1)  # cumulative: 2 more on B1, none elsewhere
    assert lb.sessions.counts(1) == {B1: 2}


def test_counters_installed_afresh_count_from_zero():
    counts = PinnedCounts()
    counts.reading(1, 1, {B1: 50})
    counts.disconnected(1)
    counts.reading(1, 1, {B1: 4})
    assert counts.live(1) == {B1: 4}
    counts.reading(1, 1, {B1: 3})  # below the last reading without a disconnect: reinstalled meanwhile
    assert counts.live(1) == {B1: 3}


def test_counts_of_several_balancers_add_up_and_a_vip_leaving_is_forgotten():
    counts = PinnedCounts()
    counts.reading(1, 1, {B1: 2})
    counts.reading(2, 1, {B1: 3, B2: 1})
    counts.picked(2, 1, B2)
    counts.picked(1, 2, B2)
    assert counts.live(1) == {B1: 5, B2: 2}
    counts.keep_only({2})
    assert counts.live(1) == {} and counts.live(2) == {B2: 1}


def test_epochs_never_take_the_value_of_a_just_picked_connection():
    assert following(1) == 2 and following(EPOCH_LIMIT) == 1


def test_an_epoch_goes_on_through_a_reload():
    lb = balancer()
    lb.tick(10.5)
    lb.reconfigure(_cfg_with(pin="conntrack", scheduler="lc", idle_timeout=10, backends=[{"ip": "10.11.12.11"}]), 11.0)
    assert lb.running.epochs == {1: 2}
    adds = [m for _, m in lb.reconfigure(_cfg_with(pin="conntrack", scheduler="lc", idle_timeout=10), 12.0)
            if isinstance(m, parser.OFPFlowMod) and m.command == ofp.OFPFC_ADD
            and m.priority == SESSION.priority("pinned_seen")]
    assert {dict(m.match.items())["ct_label"] for m in adds} == {(2, 0xFFFFFFFF)}


def test_traffic_totals_never_drop_when_an_epoch_copy_goes():
    lb = balancer()
    pinned, seen = SESSION.priority("pinned"), SESSION.priority("pinned_seen")
    cookie = cookies.make(cookies.STAGE_SESSION, generation=lb.running.generation, vip=1,
                          obj=lb.running.ctx.backend_ids[B1])

    def read(counts, now):
        (_, request), = lb.readings.requests.start_round([1], "traffic", now)
        label = [(("ct_label", (epoch, 0xFFFFFFFF)),) if epoch else () for _, epoch, _ in counts]
        lb.session_stats(1, request.xid, [FlowStat(cookie | (session.EPOCH_COPY if prio == seen else 0), n,
                                                   match=match, packet_count=1, priority=prio)
                                          for (prio, _, n), match in zip(counts, label)], now)
        return lb.readings.traffic.total((1, B1))[0]

    assert read([(pinned, 0, 100), (seen, 1, 50)], 1.0) == 150
    lb.tick(10.5)  # epoch 1 ends: its copy is deleted, and its flow-removed has the final count
    lb.flow_removed(1, cookie | session.EPOCH_COPY, ofp.OFPRR_DELETE, 10.6, 60, {"ct_label": (1, 0xFFFFFFFF)}, 2)
    assert lb.readings.traffic.total((1, B1))[0] == 160
    assert read([(pinned, 0, 120), (seen, 2, 10)], 11.0) == 190


def test_dynamic_feedback_weighs_the_bytes_of_conntrack_pins():
    doc = yaml.safe_load((ROOT / "topologies" / "worked_example.yaml").read_text())
    doc["vips"][0].update(pin="conntrack", scheduler="wrr")
    doc["feedback"] = {"interval": 5, "max_step": 0.25}
    lb = Balancer(parse_config(doc))
    lb.switch_connected(1, 0.0)
    pinned = SESSION.priority("pinned")

    def pin(ip):
        return cookies.make(cookies.STAGE_SESSION, generation=lb.running.generation, vip=1,
                            obj=lb.running.ctx.backend_ids[ip])

    for n, now in enumerate((5.0, 10.0, 15.0, 20.0), start=1):
        requests = table_reads(lb.tick(now))
        lb.session_stats(1, requests[0].xid, [FlowStat(pin(B1), n * 900_000, priority=pinned),
                                              FlowStat(pin(B2), n * 100_000, priority=pinned),
                                              FlowStat(pin(B3), n * 100_000, priority=pinned)], now)
    factors = {b["ip"]: b["feedback_factor"] for b in lb.snapshot(20.0)["vips"][0]["backends"]}
    assert factors["10.11.12.11"] < 1.0 < factors["10.11.12.12"]


def test_counts_go_with_the_epochs_when_a_vip_stops_pinning_in_conntrack():
    lb = balancer("rr")
    lb.packet_in(1, 3, NEW_CONN, syn(40000), now=1.0)
    lb.reconfigure(_cfg_with(pin="flow", scheduler="rr", idle_timeout=10), 2.0)
    assert lb.sessions.counts(1) == {} and lb.running.epochs == {}
    flow = lb.packet_in(1, 3, NEW_CONN, syn(40001), now=3.0)[0][1]
    assert flow.kind == "session" and sum(lb.sessions.counts(1).values()) == 1


def test_a_conntrack_pinned_vips_connections_are_counted_not_listed():
    lb = balancer()
    lb.packet_in(1, 3, NEW_CONN, syn(40000), now=1.0)
    with pytest.raises(NotListed, match="dump-conntrack zone=27"):
        sessions_of(lb, "web", 2.0)
    assert lb.snapshot(2.0)["vips"][0]["sessions"] == 1 and lb.snapshot(2.0)["vips"][0]["pin"] == "conntrack"


def test_a_switch_back_from_away_loses_its_stale_epoch_copies_but_keeps_its_counting_flows():
    lb = balancer()
    lb.switch_disconnected(1)
    lb.tick(10.5)  # epoch 1 ends while the switch is away: its copies of epoch 1 were not deleted
    out = [m for _, m in lb.switch_connected(1, 11.0)]
    copies = [i for i, m in enumerate(out) if isinstance(m, parser.OFPFlowMod) and m.command == ofp.OFPFC_DELETE
              and m.table_id == SESSION.table_id]
    adds = [i for i, m in enumerate(out) if isinstance(m, parser.OFPFlowMod) and m.command == ofp.OFPFC_ADD
            and m.priority == SESSION.priority("pinned_seen")]
    assert len(copies) == 3 and len(adds) == 3 and max(copies) < min(adds)
    for i in copies:  # not strict, any epoch; only cookies with the copy bit: the counting flows stay
        assert out[i].cookie & session.EPOCH_COPY and out[i].cookie_mask & session.EPOCH_COPY
        assert "ct_label" not in dict(out[i].match.items())
    counting = [m for m in out if isinstance(m, parser.OFPFlowMod) and m.priority == SESSION.priority("pinned")]
    assert counting and not any(m.cookie & session.EPOCH_COPY for m in counting)
    assert {dict(out[i].match.items())["ct_label"] for i in adds} == {(2, 0xFFFFFFFF)}
