"""The state objects on their own: VIP ids, the backend-state model's effective weight,
statistics requests matched by xid, and a reload as a plan that leaves the running state alone."""
import ipaddress
from pathlib import Path

import yaml
from os_ken.ofproto import ofproto_v1_3 as ofp

from lbapp.config import HealthModel, VipModel, load_config, parse_config
from lbapp.feedback import Feedback
from lbapp.reload import plan_reload
from lbapp.service import Balancer
from lbapp.shared import VipKey
from lbapp.state.backends import Backends
from lbapp.state.stats import StatsRequests
from lbapp.state.vips import assign_ids
from tests.helpers.frames import tcp_frame
from tests.helpers.reads import is_pick_reading, table_reads

ROOT = Path(__file__).resolve().parents[2]
IP = ipaddress.IPv4Address


class _Vip:
    def __init__(self, port, backends=()):
        self.ip, self.protocol, self.port, self.name = IP("117.78.6.19"), "tcp", port, f"v{port}"
        self.backends = list(backends)


class _Backend:
    def __init__(self, ip, weight=1, admin_state="up"):
        self.ip, self.weight, self.admin_state = IP(ip), weight, admin_state


def test_vip_ids_are_positions_first_then_follow_their_vips():
    a, b, c = _Vip(80), _Vip(81), _Vip(82)
    first = assign_ids([a, b, c])
    assert [first[VipKey.of(v)] for v in (a, b, c)] == [1, 2, 3]
    reordered = assign_ids([c, a, b], first)
    assert reordered == first
    # b goes, d comes: d takes the lowest free id (b's); a and c keep theirs
    d = _Vip(83)
    after = assign_ids([c, d, a], first)
    assert (after[VipKey.of(a)], after[VipKey.of(c)], after[VipKey.of(d)]) == (1, 3, 2)


def test_the_effective_weight_is_one_function_of_admin_state_health_and_feedback():
    vip = VipModel(name="web", ip="117.78.6.19", port=80, backends=[
        {"ip": "10.0.0.1", "weight": 3}, {"ip": "10.0.0.2", "weight": 0}, {"ip": "10.0.0.3", "weight": 2, "down": True},
        {"ip": "10.0.0.4", "weight": 5}], health={"type": "tcp"})
    backends = Backends([(1, vip)])
    assert [w.weight for w in backends.weights(1)] == [3, 0, 0, 5]
    backends.states[(1, IP("10.0.0.4"))].health = "down"
    assert backends.effective_weight(1, IP("10.0.0.4")) == 0
    fb = Feedback(5.0)
    fb.factors[IP("10.0.0.1")] = 0.5
    found = {("10.0.0.4", 80): "down"}  # what the health checks found: their own state

    def health_of(target):
        return found.get((str(target.backend), target.port), "unchecked")

    scaled = Backends([(1, vip)], fb, health_of)
    # feedback works in hundredths; a check's finding speaks for the backend
    assert [w.weight for w in scaled.weights(1)] == [150, 0, 0, 0]
    assert scaled.admin_weights_by_ip() == {IP("10.0.0.1"): 3, IP("10.0.0.2"): 0, IP("10.0.0.3"): 0,
                                            IP("10.0.0.4"): 5}
    # another check (another port) has found nothing yet: it says nothing of the backend
    other = vip.model_copy(update={"health": HealthModel(type="tcp", port=8080)})
    assert Backends([(1, other)], health_of=health_of).effective_weight(1, IP("10.0.0.4")) == 5


def test_statistics_replies_are_matched_to_their_request_by_xid():
    stats = StatsRequests()
    adopt = stats.request(1, "adopt")
    round_ = stats.start_round([1, 2])
    xids = {adopt.xid} | {m.xid for _, m in round_}
    assert len(xids) == 3
    assert stats.purpose(1, adopt.xid) == "adopt" and stats.purpose(2, adopt.xid) is None  # another switch's
    assert stats.answered(adopt.xid, more=False) is False
    assert stats.purpose(1, adopt.xid) is None  # answered: a repeat is nobody's
    (one, first), (two, second) = round_
    assert stats.purpose(one, first.xid) == "feedback"
    assert stats.answered(first.xid, more=True) is False  # a part, not the whole reply
    assert stats.answered(first.xid, more=False) is False  # switch 2 has not answered
    newer = stats.start_round([1])  # a new round abandons the old one
    assert stats.purpose(two, second.xid) is None
    assert stats.answered(newer[0][1].xid, more=False) is True


def test_a_statistics_request_refused_or_never_answered_is_given_up_with_its_round():
    stats = StatsRequests()
    one, two = stats.start_round([1, 2], "feedback", now=0.0)
    assert stats.failed(2, one[1].xid) is None  # not switch 2's request
    assert stats.failed(1, one[1].xid) == "feedback"  # refused: the round is given up...
    assert stats.purpose(2, two[1].xid) is None and stats.pending == {}  # ...switch 2's answer is nobody's
    adopt = stats.request(1, "adopt", now=10.0)
    stats.start_round([2], "traffic", now=30.0)
    assert stats.expire(39.0) == 0 and stats.expire(40.5) == 1  # the adoption request, 30 s unanswered
    assert stats.purpose(1, adopt.xid) is None and adopt.xid not in stats.adopting
    assert stats.expire(61.0) == 1 and stats.pending == {} and stats.rounds == {}


def _syn(sport):
    return tcp_frame("aa:bb:cc:dd:ee:ff", "02:00:00:00:00:02", "200.1.1.19", "117.78.6.19", sport, 80)


def test_a_reload_plan_changes_nothing_until_it_is_taken():
    from lbapp.pipeline import cookies
    lb = Balancer(load_config(ROOT / "topologies" / "worked_example.yaml"))
    lb.switch_connected(1, 0.0)
    lb.switch_connected(2, 0.0)
    new_conn = cookies.make(cookies.STAGE_SESSION, vip=1)
    lb.packet_in(1, 1, new_conn, _syn(40000), 1.0)
    before = lb.snapshot(1.0)
    doc = yaml.safe_load((ROOT / "topologies" / "worked_example.yaml").read_text())
    doc["vips"][0]["backends"] = [{"ip": "10.11.12.12"}, {"ip": "10.11.12.13", "weight": 3}]
    doc["edges"][0]["backends"] = ["10.11.12.12", "10.11.12.13"]
    plan = plan_reload(lb.running, parse_config(doc), lb.lingering, lb.groups, lb.connected, [])
    assert plan.running.generation == 1 and plan.messages  # only a VIP changed: the generation stays
    assert lb.snapshot(1.0) == before  # nothing taken yet
    # the plan's messages are what the reload sends: the flows that differ, then those that went
    flow_mods = [m for _, m in plan.messages if hasattr(m, "table_id") and not hasattr(m, "buckets")]
    adds = [m for m in flow_mods if m.command == ofp.OFPFC_ADD]
    deletes = [m for m in flow_mods if m.command == ofp.OFPFC_DELETE_STRICT]
    assert adds and all(cookies.decode(m.cookie).generation == 1 for m in adds
                        if cookies.decode(m.cookie).vip != cookies.LINGER_VIP)  # lingering pins: generation 0
    assert deletes and all(cookies.decode(m.cookie).generation == 1 for m in deletes)
    # and the scheduler still shares by the old weights: the next two go to .12 and .13
    picked = [lb.packet_in(1, 1, new_conn, _syn(40001 + i), 2.0)[0][1].info["eth_dst"] for i in range(2)]
    assert [lb.running.ctx.scheme.decode(m) for m in picked] == [IP("10.11.12.12"), IP("10.11.12.13")]
    lb.reconfigure(parse_config(doc), 3.0)
    state = lb.snapshot(3.0)
    assert state["generation"] == 1  # a change of VIPs keeps it
    assert [(b["ip"], b["effective_weight"]) for b in state["vips"][0]["backends"]] == [("10.11.12.12", 1),
                                                                                        ("10.11.12.13", 3)]


def test_traffic_is_read_only_while_watched_and_counts_an_ended_session_once():
    from lbapp.state.traffic import READ_EVERY_S, WATCHED_FOR_S, Traffic
    traffic = Traffic()
    assert not traffic.due(10.0)  # nobody looks: no reading
    traffic.watched(10.0)
    assert traffic.due(10.0) and not traffic.due(10.0 + READ_EVERY_S / 2) and traffic.due(10.0 + READ_EVERY_S)
    assert not traffic.due(10.0 + WATCHED_FOR_S + READ_EVERY_S)
    pair = (1, IP("10.11.12.11"))
    traffic.reading({7: (pair, 500, 5), 8: (pair, 100, 1)}, {})
    traffic.reading({7: (pair, 700, 7), 8: (pair, 100, 1)}, {(2, IP("10.11.12.12")): (50, 1)})  # replaces
    assert (traffic.total(pair), traffic.total((2, IP("10.11.12.12")))) == ((800, 8), (50, 1))
    traffic.session_ended(7, pair, 720, 8)  # its final count replaces its last reading
    assert traffic.total(pair) == (820, 9)


def test_bytes_and_packets_per_backend_from_session_and_pin_flows():
    from lbapp.pipeline import cookies
    from lbapp.handlers.readings import FlowStat
    doc = yaml.safe_load((ROOT / "topologies" / "cross_vlan.yaml").read_text())
    lb = Balancer(parse_config(doc))
    lb.switch_connected(1, 0.0)
    web = next(v["id"] for v in lb.snapshot(0.0)["vips"] if v["name"] == "web")
    fast = next(v["id"] for v in lb.snapshot(0.0)["vips"] if v["name"] == "stream-fast")
    flow = lb.packet_in(1, 1, cookies.make(cookies.STAGE_SESSION, vip=web), _syn(40000), 1.0)[0][1]
    assert not [m for _, m in lb.tick(2.0) if getattr(m, "xid", None) and m.table_id == 20 and not is_pick_reading(m)]  # unwatched
    lb.readings.watched(2.0)
    (request,) = table_reads(lb.tick(2.1))
    pin = cookies.make(cookies.STAGE_SESSION, generation=lb.running.generation, vip=fast,
                       obj=lb.running.ctx.backend_ids[IP("10.11.13.13")])
    lb.session_stats(1, request.xid, [FlowStat(flow.info["cookie"], 600, packet_count=6),
                                      FlowStat(pin, 900, packet_count=9),
                                      FlowStat(cookies.make(cookies.STAGE_SESSION, vip=web), 50, packet_count=1)],
                     2.2)
    lb.flow_removed(1, flow.info["cookie"], ofp.OFPRR_IDLE_TIMEOUT, 3.0, byte_count=640, packet_count=7)
    by = {(v["name"], b["ip"]): (b["bytes"], b["packets"]) for v in lb.snapshot(3.0)["vips"] for b in v["backends"]}
    # the ended flow counts once, with its final count; the pin flow counts for its backend
    assert by[("web", "10.11.12.11")] == (640, 7) and by[("stream-fast", "10.11.13.13")] == (900, 9)
    assert by[("web", "10.11.12.12")] == (0, 0)


def test_traffic_of_a_session_the_controller_dropped_stays_and_a_session_ended_mid_round_counts_once():
    from lbapp.state.traffic import Traffic
    traffic = Traffic()
    pair = (1, IP("10.11.12.11"))
    traffic.reading({7: (pair, 500, 5), 8: (pair, 100, 1)}, {})
    traffic.session_gone(7, pair)  # dropped by the controller: its last reading stays counted
    assert traffic.total(pair) == (600, 6)
    # 8 ends while a round is under way that saw it still live: the round's reading leaves it out
    traffic.session_ended(8, pair, 150, 2)
    traffic.reading({8: (pair, 120, 1)}, {})
    assert traffic.total(pair) == (650, 7)


def test_rates_are_the_growth_over_the_last_completed_interval():
    from collections import Counter

    from lbapp.state.rates import Rates

    rates = Rates()
    assert rates.due(100.0)
    rates.sample(100.0, Counter({"a": 10}))
    assert rates.per_second("a") == 0.0  # one sample: no rate yet
    assert not rates.due(100.5) and rates.due(101.0)
    rates.sample(102.0, Counter({"a": 30, "b": 4}))
    assert rates.per_second("a") == 10.0 and rates.per_second("b") == 2.0 and rates.per_second("c") == 0.0
    rates.sample(103.0, Counter({"a": 30}))  # a counter that went down (forgotten) is no negative rate
    assert rates.per_second("a") == 0.0 and rates.per_second("b") == 0.0


def test_the_snapshot_gives_connections_per_second_and_setup_latency():
    from lbapp.pipeline import cookies
    lb = Balancer(load_config(ROOT / "topologies" / "worked_example.yaml"))
    lb.switch_connected(1, 10.0)
    new_conn = cookies.make(cookies.STAGE_SESSION, vip=1)
    for n in range(30):
        lb.packet_in(1, 1, new_conn, _syn(41000 + n), 10.5)
    lb.setup_latency.observe(0.0003)
    lb.tick(12.0)
    state = lb.snapshot(12.0)
    row = state["vips"][0]
    assert row["connections"] == 30 and row["connections_per_second"] == 15.0  # 30 in the 2 s since 10.0
    assert sum(be["connections_per_second"] for be in row["backends"]) == 15.0
    assert state["packet_ins_per_second"] == 15.0
    assert state["setup_latency"]["count"] == 1 and state["setup_latency"]["p50_at_most"] == 0.0005


def test_next_hop_learning_believes_only_the_gateways_port_and_warns_once_per_flood():
    from lbapp.state.nexthops import NextHops

    gw_ip = ipaddress.IPv4Address("10.0.0.1")
    hops = NextHops.of([("r0", gw_ip, [])], probe_interval=5.0)
    first = hops.learn(gw_ip, 0xAA, 1, 0.0, eth_src=0xAA)
    assert first.changed and (first.old_mac, first.old_port) == (None, None)
    assert hops.learn(gw_ip, 0xBB, 1, 1.0, eth_src=0xCC).refused == "its Ethernet source differs from the MAC it claims"
    spoofs = [hops.learn(gw_ip, 0xEE, 2, 1.0 + i * 0.01, eth_src=0xEE) for i in range(100)]
    assert {s.refused for s in spoofs} == {"it answers on port 1"}
    assert (hops.by_name["r0"].mac, hops.by_name["r0"].port) == (0xAA, 1)
    assert hops.warn_now(hops.by_name["r0"], 2.0) == 101  # one warning for the lot...
    hops.learn(gw_ip, 0xEE, 2, 3.0, eth_src=0xEE)
    assert hops.warn_now(hops.by_name["r0"], 3.0) == 0  # ...and the next not before 10 s
    assert hops.warn_now(hops.by_name["r0"], 12.5) == 1
    failover = hops.learn(gw_ip, 0xAB, 1, 4.0)  # a new MAC on its port: followed
    assert failover.changed and (failover.old_mac, failover.old_port) == (0xAA, 1)
    # a reload that pins it to other ports forgets what was learned on this one
    pinned = NextHops.of([("r0", gw_ip, [3])], probe_interval=5.0)
    pinned.keep_learned(hops)
    assert pinned.by_name["r0"].mac is None


def test_overload_is_entered_over_the_limit_held_and_left():
    from lbapp.state.overload import decide

    overloaded: dict[int, float] = {}
    assert decide(overloaded, {1: 40.0, 2: 60.0}, [1, 2], above=50, hold=10, now=0.0).entered == [2]
    assert decide(overloaded, {2: 70.0}, [1, 2], above=50, hold=10, now=5.0).entered == []  # still over: held on
    assert decide(overloaded, {}, [1, 2], above=50, hold=10, now=14.0).left == []  # 10 s from the last time over
    assert decide(overloaded, {}, [1, 2], above=50, hold=10, now=15.0).left == [2] and overloaded == {}
    assert decide(overloaded, {1: 1e6}, [1], above=0, hold=10, now=16.0).entered == []  # 0: never
    overloaded[3] = 16.0
    assert decide(overloaded, {}, [1], above=50, hold=10, now=16.5).left == [3]  # no longer the controller's


def test_a_config_with_several_balancers_ticks_and_weighs_overload():
    lb = Balancer(load_config(ROOT / "topologies" / "two_balancers.yaml"))
    for dpid in (1, 4):
        lb.switch_connected(dpid, 0.0)
    for now in (0.5, 1.5, 2.5):  # rates sampled, overload weighed with the first balancer's limits
        lb.tick(now)
    assert lb.snapshot(2.5)["vips"][0]["overloaded"] is False


def test_while_the_switch_picks_its_pick_flows_counter_keeps_a_going_flood_with_it():
    from lbapp.pipeline import cookies
    from lbapp.pipeline import session as session_flows
    from lbapp.handlers.readings import FlowStat

    doc = yaml.safe_load((ROOT / "topologies" / "worked_example.yaml").read_text())
    doc["balancer"].update(overload_above=50, overload_hold=3)
    lb = Balancer(parse_config(doc))
    lb.switch_connected(1, 0.0)
    new_conn, pick = cookies.make(cookies.STAGE_SESSION, vip=1), session_flows.TABLE.priority("pick")
    lb.tick(0.0)
    for i in range(100):
        lb.packet_in(1, 1, new_conn, _syn(42000 + i), 0.5)

    def tick_and_answer(now: float, syns: int) -> None:
        """A tick; the switch answers its pick-flow reading: ``syns`` first packets so far."""
        for dpid, msg in lb.tick(now):
            if is_pick_reading(msg):
                lb.session_stats(dpid, msg.xid, [FlowStat(cookies.make(cookies.STAGE_SESSION, generation=1, vip=1),
                                                          0, packet_count=syns, priority=pick)], now)

    tick_and_answer(1.0, 0)
    assert lb.snapshot(1.0)["vips"][0]["overloaded"]
    for second in range(2, 8):  # the flood goes on in the switch: 1,000 first SYNs a second
        tick_and_answer(float(second), 1000 * (second - 1))
    assert lb.snapshot(7.0)["vips"][0]["overloaded"]  # 6 s on, past the 3 s hold: still the switch's
    for second in range(8, 12):  # it stops
        tick_and_answer(float(second), 6000)
    assert not lb.snapshot(11.0)["vips"][0]["overloaded"]


def test_a_flood_spread_over_vips_each_under_the_limit_hands_the_busiest_over_until_the_rest_fit():
    from lbapp.state.overload import decide

    overloaded: dict[int, float] = {}
    # three parts of a flood, each under 2000/s, 3900/s together against a budget of 3000
    rates = {1: 1300.0, 2: 1350.0, 3: 1250.0, 4: 5.0}
    verdict = decide(overloaded, rates, [1, 2, 3, 4], above=2000, hold=10, now=0.0, budget=3000)
    assert verdict.entered == [2]  # the busiest: the rest (2555/s) fit
    # the meter lets more through to the two left: the next one goes too
    verdict = decide(overloaded, {1: 1900.0, 2: 1950.0, 3: 1850.0, 4: 5.0}, [1, 2, 3, 4], 2000, 10, 1.0, 3000)
    assert verdict.entered == [1] and set(overloaded) == {1, 2}
    # while the flood goes on, the VIPs handed over stay (their rates now read from the switch)
    for now in range(2, 30):
        assert decide(overloaded, {1: 1900.0, 2: 1950.0, 3: 1850.0, 4: 5.0}, [1, 2, 3, 4], 2000, 10, float(now),
                      3000).left == []
    assert set(overloaded) == {1, 2}  # the quiet VIP never goes
    # the flood over: handed back after the hold
    assert decide(overloaded, {4: 5.0}, [1, 2, 3, 4], 2000, 10, 39.0).left == [1, 2]
    # no budget, or the hand-over off: only a VIP over the limit alone
    assert decide({}, {1: 1900.0, 2: 1950.0}, [1, 2], 2000, 10, 0.0).entered == []
    assert decide({}, {1: 1900.0, 2: 1950.0}, [1, 2], 0, 10, 0.0, budget=3000).entered == []


def test_the_pick_flows_counters_show_a_spread_flood_the_punt_meter_hides_from_the_controller():
    """Spread over the VIPs, a flood fills the punt meter; the controller sees only what passed
    it (here nothing), but each pick flow counted every first packet: the busiest VIPs go."""
    from lbapp.handlers.readings import FlowStat
    from lbapp.pipeline import cookies
    from lbapp.pipeline import session as session_flows

    doc = yaml.safe_load((ROOT / "topologies" / "cross_vlan.yaml").read_text())
    doc["balancer"].update(overload_above=2000, punt_limit=4000)
    lb = Balancer(parse_config(doc))
    lb.switch_connected(1, 0.0)
    picked = [v["id"] for v in lb.snapshot(0.0)["vips"] if v["selection"] == "controller"]
    assert len(picked) == 3
    pick = session_flows.TABLE.priority("pick")

    def tick_and_answer(now: float, per_vip: int) -> None:
        for dpid, msg in lb.tick(now):
            if is_pick_reading(msg):
                lb.session_stats(dpid, msg.xid, [FlowStat(cookies.make(cookies.STAGE_SESSION, vip=v), 0,
                                                          packet_count=per_vip, priority=pick) for v in picked], now)

    tick_and_answer(1.0, 0)
    tick_and_answer(2.0, 1400)  # 1,400/s on each: under 2,000 alone, 4,200/s together
    tick_and_answer(3.0, 2800)  # weighed on the next tick
    overloaded = [v["id"] for v in lb.snapshot(3.0)["vips"] if v["overloaded"]]
    assert len(overloaded) == 1  # the rest (2,800/s) fits the budget of 3,000/s
