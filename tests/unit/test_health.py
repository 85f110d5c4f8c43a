"""Health checks without a switch: the up/down machine with time passed in, the probes' frames
and what their answers mean, and a Balancer that takes a failed backend out and back."""
import ipaddress
from pathlib import Path

import yaml
from os_ken.lib.packet import ether_types, ethernet, icmp, in_proto, ipv4, packet, tcp, udp
from os_ken.ofproto import ofproto_v1_3 as ofp

from lbapp.config import parse_config
from lbapp.pipeline import cookies
from lbapp.probes import Prober, probe_port
from lbapp.service import Balancer
from lbapp.state.health import HealthChecks, Target
from tests.helpers.frames import arp_request, tcp_frame
from tests.helpers.reads import tick

ROOT = Path(__file__).resolve().parents[2]
IP = ipaddress.IPv4Address
LB_MAC, LB_IP, FAB = 0x020000000002, IP("10.0.0.2"), 0xAABB0A0B0C0B


def target(kind="tcp", port=80, rise=2, fall=3, **kw):
    return Target(IP("10.11.12.11"), kind, port, 2.0, 1.0, rise, fall, **kw)


# --- the state machine ---

def test_fall_failures_take_a_backend_down_and_rise_passes_bring_it_back():
    checks = HealthChecks()
    t = target()
    checks.load([t])
    states = []
    now = 0.0
    for passed in (True, True, False, False, False, True, True):
        (probe, _), = checks.due(now)
        change = checks.report(probe, passed, "connected" if passed else "reset")
        states.append(change.state if change else None)
        now += 2.0
    assert states == [None, "up", None, None, "down", None, "up"]
    assert checks.status[t].probes == 7


def test_a_probe_unanswered_within_its_timeout_fails():
    checks = HealthChecks()
    t = target(fall=1)
    checks.load([t])
    (probe, _), = checks.due(0.0)
    assert checks.overdue(0.9) == []
    assert checks.overdue(1.0) == [probe] and checks.overdue(1.1) == []  # held once, for judgement
    judged, changes, void = checks.judge([probe], behind=0.001)  # a barrier came back at once: no answer waits
    assert judged == [probe] and void == 0
    assert [(c.state, c.reason) for c in changes] == [("down", "timeout, 1 failures")]
    assert checks.report(probe, True, "late") is None  # its answer, too late: nobody's


def test_a_late_probe_is_void_when_the_balancer_was_behind_and_passes_when_its_answer_comes_first():
    checks = HealthChecks()
    t = target(fall=1)  # timeout 1 s
    checks.load([t])
    (probe, _), = checks.due(0.0)
    assert checks.overdue(1.0) == [probe]
    judged, changes, void = checks.judge([probe], behind=0.6)  # its answer may have waited behind a queue
    assert judged == [probe] and changes == [] and void == 1 and checks.status[t].state == "unchecked"
    assert checks.status[t].not_judged == 1 and checks.status[t].failures == 0
    (probe, _), = checks.due(2.0)  # the next one goes on its beat
    assert checks.overdue(3.0) == [probe]
    assert checks.report(probe, True, "connected") is None  # answered while held: it counts
    assert checks.judge([probe], behind=0.0) == ([], [], 0)  # nothing left to judge
    assert checks.status[t].passes == 1


def test_new_checks_are_spread_over_their_first_interval_and_wait_for_a_route():
    checks = HealthChecks()
    targets = [Target(IP(f"10.11.12.{i}"), "tcp", 80, 2.0, 1.0, 2, 3) for i in range(1, 5)]
    checks.load(targets)
    assert len(checks.due(100.0, ready=lambda t: False)) == 0  # no next hop yet: nothing sent
    # the first look fixed their starts 0, 0.5, 1 and 1.5 s on
    assert [len(checks.due(t)) for t in (100.0, 100.9, 101.5)] == [1, 1, 2]


def test_a_check_kept_by_a_reload_keeps_its_state():
    checks = HealthChecks()
    t = target(rise=1)
    checks.load([t])
    (probe, _), = checks.due(0.0)
    checks.report(probe, True, "connected")
    checks.load([t, target(port=8080)])
    assert checks.status[t].state == "up" and checks.status[target(port=8080)].state == "unchecked"


# --- frames and answers ---

def _answer(src, sport, dport, bits, seq=0, ack=0, payload=b""):
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst="02:00:00:00:00:02", src="aa:bb:cc:dd:ee:ff",
                                       ethertype=ether_types.ETH_TYPE_IP))
    pkt.add_protocol(ipv4.ipv4(ttl=63, proto=in_proto.IPPROTO_TCP, src=src, dst=str(LB_IP)))
    pkt.add_protocol(tcp.tcp(sport, dport, seq, ack, 0, bits, 65000))
    if payload:
        pkt.add_protocol(payload)
    pkt.serialize()
    return bytes(pkt.data)


def _parse(frame):
    pkt = packet.Packet(frame)
    return pkt.get_protocol(ethernet.ethernet), pkt.get_protocol(ipv4.ipv4), pkt


def test_a_tcp_probe_is_a_syn_from_the_balancer_and_a_syn_ack_passes_then_resets():
    prober = Prober(seed=1)
    syn = prober.start(7, target(), 1, LB_MAC, LB_IP, FAB)
    eth, ip, pkt = _parse(syn)
    seg = pkt.get_protocol(tcp.tcp)
    assert (eth.src, eth.dst, ip.src, ip.dst) == ("02:00:00:00:00:02", "aa:bb:0a:0b:0c:0b", "10.0.0.2", "10.11.12.11")
    assert seg.bits == tcp.TCP_SYN and seg.src_port == probe_port(7) and seg.dst_port == 80
    # the edge's source NAT made the answer come from the VIP: the port tells the probe
    answered = prober.answer(_answer("117.78.6.19", 80, probe_port(7), tcp.TCP_SYN | tcp.TCP_ACK, 5000, seg.seq + 1))
    assert answered.dpid == 1 and (answered.verdict.passed, answered.verdict.reason) == (True, "connected")
    (reset,) = answered.frames
    rst = _parse(reset)[2].get_protocol(tcp.tcp)
    assert rst.bits == tcp.TCP_RST and rst.seq == seg.seq + 1
    assert prober.answer(_answer("117.78.6.19", 80, probe_port(7), tcp.TCP_RST)) is None  # over


def test_a_reset_fails_and_an_answer_to_no_probe_or_a_forged_one_is_nobodys():
    prober = Prober(seed=1)
    syn = _parse(prober.start(8, target(), 1, LB_MAC, LB_IP, FAB))[2].get_protocol(tcp.tcp)
    rst = tcp.TCP_RST | tcp.TCP_ACK
    assert prober.answer(_answer("10.11.12.11", 80, probe_port(9), rst, 0, syn.seq + 1)) is None  # no probe 9
    assert prober.answer(_answer("10.11.12.11", 80, 40000, rst, 0, syn.seq + 1)) is None  # no probe port at all
    # forged: a reset that does not acknowledge our SYN, or from another port than the probed one
    assert prober.answer(_answer("10.11.12.11", 80, probe_port(8), tcp.TCP_RST, 12345, 0)) is None
    assert prober.answer(_answer("10.11.12.11", 80, probe_port(8), rst, 0, syn.seq + 7)) is None
    assert prober.answer(_answer("10.11.12.11", 22, probe_port(8), rst, 0, syn.seq + 1)) is None
    answered = prober.answer(_answer("10.11.12.11", 80, probe_port(8), rst, 0, syn.seq + 1))
    assert (answered.verdict.passed, answered.verdict.reason) == (False, "reset")


def test_http_data_out_of_sequence_is_not_the_answer():
    prober = Prober(seed=5)
    t = target("http")
    seg = _parse(prober.start(3, t, 1, LB_MAC, LB_IP, FAB))[2].get_protocol(tcp.tcp)
    prober.answer(_answer("117.78.6.19", 80, probe_port(3), tcp.TCP_SYN | tcp.TCP_ACK, 9000, seg.seq + 1))
    forged = _answer("117.78.6.19", 80, probe_port(3), tcp.TCP_ACK | tcp.TCP_PSH, 5555, seg.seq + 1,
                     b"HTTP/1.1 200 OK\r\n\r\n")
    assert prober.answer(forged) is None


def test_an_http_probe_sends_one_get_and_judges_the_status():
    for status, passed in ((b"200 OK", True), (b"503 Service Unavailable", False)):
        prober = Prober(seed=2)
        t = target("http", path="/health", host="web", expect=(200, 399))
        seg = _parse(prober.start(3, t, 1, LB_MAC, LB_IP, FAB))[2].get_protocol(tcp.tcp)
        step = prober.answer(_answer("117.78.6.19", 80, probe_port(3), tcp.TCP_SYN | tcp.TCP_ACK, 9000, seg.seq + 1))
        assert step.verdict is None
        get_pkt = _parse(step.frames[0])[2]
        get = get_pkt.get_protocol(tcp.tcp)
        assert get.ack == 9001 and get.seq == seg.seq + 1
        request = get_pkt.protocols[-1]
        assert request.startswith(b"GET /health HTTP/1.0\r\nHost: web\r\n")
        # a bare ACK of the GET says nothing yet; the answer's status line does
        ack = prober.answer(_answer("117.78.6.19", 80, probe_port(3), tcp.TCP_ACK, 9001, seg.seq + 1 + len(request)))
        assert ack.verdict is None and ack.frames == []
        done = prober.answer(_answer("117.78.6.19", 80, probe_port(3), tcp.TCP_ACK | tcp.TCP_PSH, 9001,
                                     seg.seq + 1 + len(request), b"HTTP/1.1 " + status + b"\r\n\r\n"))
        assert (done.verdict.passed, done.verdict.reason) == (passed, f"status {status[:3].decode()}")
        assert _parse(done.frames[0])[2].get_protocol(tcp.tcp).bits == tcp.TCP_RST


def test_udp_answers_pass_and_a_port_unreachable_fails():
    prober = Prober(seed=3)
    datagram = prober.start(4, target("udp", 5353), 1, LB_MAC, LB_IP, FAB)
    _, ip, pkt = _parse(datagram)
    assert pkt.get_protocol(udp.udp).src_port == probe_port(4)
    # the backend's kernel answers a closed port with ICMP port unreachable quoting the datagram
    quoted = datagram[14:14 + 28]
    unreachable = packet.Packet()
    unreachable.add_protocol(ethernet.ethernet(dst="02:00:00:00:00:02", src="aa:bb:cc:dd:ee:ff"))
    unreachable.add_protocol(ipv4.ipv4(ttl=63, proto=in_proto.IPPROTO_ICMP, src="10.11.12.11", dst=str(LB_IP)))
    unreachable.add_protocol(icmp.icmp(icmp.ICMP_DEST_UNREACH, icmp.ICMP_PORT_UNREACH_CODE, 0,
                                       icmp.dest_unreach(data=quoted)))
    unreachable.serialize()
    answered = prober.answer(bytes(unreachable.data))
    assert (answered.verdict.probe, answered.verdict.passed, answered.verdict.reason) == (4, False,
                                                                                        "unreachable (code 3)")
    # one that quotes another datagram (another destination) is no answer to the probe
    probe5 = prober.start(5, target("udp", 5353), 1, LB_MAC, LB_IP, FAB)
    other = bytearray(probe5[14:14 + 28])
    other[16:20] = bytes([10, 11, 12, 99])  # the quoted datagram went to another host
    forged = packet.Packet()
    forged.add_protocol(ethernet.ethernet(dst="02:00:00:00:00:02", src="aa:bb:cc:dd:ee:ff"))
    forged.add_protocol(ipv4.ipv4(ttl=63, proto=in_proto.IPPROTO_ICMP, src="10.11.12.11", dst=str(LB_IP)))
    forged.add_protocol(icmp.icmp(icmp.ICMP_DEST_UNREACH, icmp.ICMP_PORT_UNREACH_CODE, 0,
                                  icmp.dest_unreach(data=bytes(other))))
    forged.serialize()
    assert prober.answer(bytes(forged.data)) is None


def test_an_icmp_echo_reply_passes_only_its_own_probe():
    prober = Prober(seed=4)
    request = _parse(prober.start(5, target("icmp", 0), 1, LB_MAC, LB_IP, FAB))[2].get_protocol(icmp.icmp)
    assert request.type == icmp.ICMP_ECHO_REQUEST and request.data.id == 5

    def reply(echo_id, to=str(LB_IP), frm="10.11.12.11"):
        pkt = packet.Packet()
        pkt.add_protocol(ethernet.ethernet(dst="02:00:00:00:00:02", src="aa:bb:cc:dd:ee:ff"))
        pkt.add_protocol(ipv4.ipv4(ttl=63, proto=in_proto.IPPROTO_ICMP, src=frm, dst=to))
        pkt.add_protocol(icmp.icmp(icmp.ICMP_ECHO_REPLY, 0, 0, icmp.echo(echo_id, 1, b"lbapp")))
        pkt.serialize()
        return bytes(pkt.data)

    assert prober.answer(reply(6)) is None and prober.answer(reply(5, to="10.0.0.9")) is None
    assert prober.answer(reply(5, frm="10.11.12.66")) is None  # only the probed backend answers an echo
    assert prober.answer(reply(5)).verdict.passed


# --- a Balancer with a health check ---

def _checked_config(panic_below=1, **health):
    doc = yaml.safe_load((ROOT / "topologies" / "worked_example.yaml").read_text())
    doc["vips"][0]["health"] = {"type": "tcp", "interval": 1, "timeout": 0.5, "rise": 1, "fall": 2, **health}
    doc["vips"][0]["panic_below"] = panic_below
    return parse_config(doc)


def _learn_gateway(lb):
    gw_arp = cookies.make(cookies.STAGE_CLASSIFY, obj=1)
    lb.packet_in(1, 3, gw_arp, arp_request("aa:bb:cc:dd:ee:ff", "10.0.0.1", "10.0.0.2"), 0.0)


def _syn(sport):
    return tcp_frame("aa:bb:cc:dd:ee:ff", "02:00:00:00:00:02", "200.1.1.19", "117.78.6.19", sport, 80)


def _probes(out):
    """The probes among a tick's messages, by backend: (probe port, SYN's seq)."""
    found = {}
    for _, msg in out:
        if getattr(msg, "kind", None) != "packet_out":
            continue
        # ofp_packet_out: 24 bytes, then actions_len bytes of actions, then the frame
        frame = msg.buf[24 + int.from_bytes(msg.buf[16:18], "big"):]
        if frame[12:14] == b"\x08\x00":
            eth, ip, pkt = _parse(frame)
            seg = pkt.get_protocol(tcp.tcp)
            if ip.src == "10.0.0.2" and seg is not None and seg.bits == tcp.TCP_SYN:
                found[ip.dst] = (seg.src_port, seg.seq)
    return found


def test_a_failed_backend_is_taken_out_its_sessions_removed_and_it_comes_back():
    lb = Balancer(_checked_config())
    lb.switch_connected(1, 0.0)
    assert _probes(tick(lb, 0.1)) == {}  # the next hop is not known yet: no probe into a drop
    _learn_gateway(lb)
    new_conn = cookies.make(cookies.STAGE_SESSION, vip=1)
    first = lb.packet_in(1, 1, new_conn, _syn(40000), 0.2)[0][1]  # rr: -> .11
    assert lb.running.ctx.scheme.decode(first.info["eth_dst"]) == IP("10.11.12.11")
    probe_cookie = cookies.make(cookies.STAGE_PROBE)
    now, down_at = 0.3, None
    for _ in range(12):  # .11 never answers; .12 and .13 do
        for backend, (port, seq) in _probes(tick(lb, now)).items():
            if backend != "10.11.12.11":
                lb.packet_in(1, 3, probe_cookie, _answer("117.78.6.19", 80, port, tcp.TCP_SYN | tcp.TCP_ACK, 1,
                                                         seq + 1), now)
        state = {b["ip"]: b["health"] for b in lb.snapshot(now)["vips"][0]["backends"]}
        if state["10.11.12.11"] == "down" and down_at is None:
            down_at = now
        now += 0.25
    assert state == {"10.11.12.11": "down", "10.11.12.12": "up", "10.11.12.13": "up"}
    assert down_at is not None and down_at <= 2.5  # two timeouts of probes 1 s apart
    assert lb.snapshot(now)["sessions"] == 0  # its session went (its flow was deleted)
    picks = {lb.running.ctx.scheme.decode(lb.packet_in(1, 1, new_conn, _syn(41000 + i), now)[0][1].info["eth_dst"])
             for i in range(6)}
    assert picks == {IP("10.11.12.12"), IP("10.11.12.13")}
    # it answers again: one pass (rise 1) brings it back
    for _ in range(8):
        for backend, (port, seq) in _probes(tick(lb, now)).items():
            lb.packet_in(1, 3, probe_cookie, _answer("117.78.6.19", 80, port, tcp.TCP_SYN | tcp.TCP_ACK, 1, seq + 1),
                         now)
        now += 0.25
    assert {b["health"] for b in lb.snapshot(now)["vips"][0]["backends"]} == {"up"}


def test_a_busy_balancer_takes_no_backend_out_for_answers_stuck_behind_its_queue():
    """Nobody answers; but each barrier sent for the late probes comes back 0.4 s later (the
    balancer is behind a queue of packet-ins, more than a quarter of the 0.5 s timeout): no
    verdict. Once barriers come back at once, the same silence takes every backend down; a
    barrier that never comes back fails its probes after a while too."""
    from os_ken.ofproto import ofproto_v1_3_parser as parser

    lb = Balancer(_checked_config())
    lb.switch_connected(1, 0.0)
    _learn_gateway(lb)
    health = lambda now: {b["health"] for b in lb.snapshot(now)["vips"][0]["backends"]}  # noqa: E731
    now, waiting = 0.3, []
    for _ in range(24):  # 6 s of silence, every barrier answered 0.4 s after it left
        out = lb.tick(now)
        waiting += [(now + 0.4, m.xid) for _, m in out if isinstance(m, parser.OFPBarrierRequest)]
        for at, xid in [w for w in waiting if w[0] <= now]:
            lb.barrier_reply(1, xid, now)
            waiting.remove((at, xid))
        now += 0.25
    assert health(now) == {"unchecked"} and lb.checker.behind >= 0.4
    for _, xid in waiting:
        lb.barrier_reply(1, xid, now)
    for _ in range(12):  # the queue is gone
        tick(lb, now)
        now += 0.25
    assert health(now) == {"down"}
    lb = Balancer(_checked_config())
    lb.switch_connected(1, 0.0)
    _learn_gateway(lb)
    for i in range(60):  # barriers never answered: 5 s after each, its probes fail
        lb.tick(0.3 + i * 0.25)
    assert health(15.3) == {"down"}


def test_a_vip_whose_checks_mostly_fail_panics_balancing_over_all_and_keeping_their_sessions():
    """panic_below 50 (Envoy's): the first failure (2 of 3 pass) takes its backend out and ends
    its session; the second (1 of 3) makes the VIP panic: new connections go to all three, and
    the sessions of the backends failing now stay. Two passing again end the panic."""
    lb = Balancer(_checked_config(panic_below=50))
    lb.switch_connected(1, 0.0)
    _learn_gateway(lb)
    new_conn, probe_cookie = cookies.make(cookies.STAGE_SESSION, vip=1), cookies.make(cookies.STAGE_PROBE)
    backend_of = lambda out: lb.running.ctx.scheme.decode(out[0][1].info["eth_dst"])  # noqa: E731
    assert {backend_of(lb.packet_in(1, 1, new_conn, _syn(40000 + i), 0.2)) for i in range(3)} == {
        IP("10.11.12.11"), IP("10.11.12.12"), IP("10.11.12.13")}  # rr: one session each
    vip = lambda now: lb.snapshot(now)["vips"][0]  # noqa: E731
    answering, now, seen = {"10.11.12.12", "10.11.12.13"}, 0.3, []

    def tick_answering(now):
        for backend, (port, seq) in _probes(tick(lb, now)).items():
            if backend in answering:
                lb.packet_in(1, 3, probe_cookie, _answer("117.78.6.19", 80, port, tcp.TCP_SYN | tcp.TCP_ACK, 1,
                                                         seq + 1), now)

    for _ in range(16):  # .11 fails: 2 of 3 pass, no panic
        tick_answering(now)
        now += 0.25
    assert not vip(now)["panic"] and vip(now)["sessions"] == 2
    answering = {"10.11.12.13"}
    for _ in range(16):  # .12 fails too: 1 of 3 pass, below 50%
        tick_answering(now)
        now += 0.25
    health = {b["ip"]: b["health"] for b in vip(now)["backends"]}
    assert health == {"10.11.12.11": "down", "10.11.12.12": "down", "10.11.12.13": "up"}
    assert vip(now)["panic"] and vip(now)["sessions"] == 2  # .12's session stays
    picked = {backend_of(lb.packet_in(1, 1, new_conn, _syn(41000 + i), now)) for i in range(6)}
    assert picked == {IP("10.11.12.11"), IP("10.11.12.12"), IP("10.11.12.13")}
    answering = {"10.11.12.12", "10.11.12.13"}
    for _ in range(8):  # .12 passes again (rise 1): 2 of 3, out of panic
        tick_answering(now)
        now += 0.25
    assert not vip(now)["panic"]
    picked = {backend_of(lb.packet_in(1, 1, new_conn, _syn(42000 + i), now)) for i in range(6)}
    assert picked == {IP("10.11.12.12"), IP("10.11.12.13")}


def test_panic_counts_the_backends_in_service_and_gives_way_to_a_sorry_server():
    from lbapp.config import VipModel
    from lbapp.state.backends import Backends

    def panics(health, panic_below=50, last=None):
        backends = [{"ip": f"10.0.0.{i + 1}"} for i in range(len(health))]
        backends[-1].update(last or {})
        vip = VipModel(name="v", ip="10.9.9.9", port=80, backends=backends, panic_below=panic_below,
                       health={"type": "tcp"})
        states = Backends([(1, vip)])
        for state, h in zip(states.of_vip(1), health):
            state.health = h
        return states.in_panic(1)

    assert not panics(["up", "down"])  # 1 of 2 pass: 50% is not below 50%
    assert panics(["up", "down", "down"])
    assert not panics(["up", "down", "down"], panic_below=1) and panics(["down", "down"], panic_below=1)
    assert not panics(["down", "down"], panic_below=0)  # never
    assert not panics(["up", "down", "down"], last={"drain": True})  # 1 of 2 in service pass
    assert not panics(["down", "down", "up"], last={"sorry": True})  # the sorry server serves
    assert panics(["down", "down", "down"], last={"sorry": True})  # it failed too


def test_on_failure_keep_leaves_the_sessions():
    lb = Balancer(_checked_config(on_failure="keep"))
    lb.switch_connected(1, 0.0)
    _learn_gateway(lb)
    lb.packet_in(1, 1, cookies.make(cookies.STAGE_SESSION, vip=1), _syn(40000), 0.2)
    out = []
    for i in range(12):
        out += tick(lb, 0.3 + i * 0.25)  # nobody answers
    assert {b["health"] for b in lb.snapshot(3.3)["vips"][0]["backends"]} == {"down"}
    assert lb.snapshot(3.3)["sessions"] == 1
    assert not [m for _, m in out if getattr(m, "command", None) == ofp.OFPFC_DELETE_STRICT]


def test_probes_travel_the_clients_path_and_answers_reach_the_controller_through_the_probe_stage():
    from tests.helpers.oftables import Switch, fields_of

    lb = Balancer(_checked_config())
    switch = Switch()
    switch.apply([m for _, m in lb.switch_connected(1, 0.0)])
    gw_arp = arp_request("aa:bb:cc:dd:ee:ff", "10.0.0.1", "10.0.0.2")  # the router, on port 3
    switch.apply([m for _, m in lb.packet_in(1, 3, cookies.make(cookies.STAGE_CLASSIFY, obj=1), gw_arp, 0.0)])
    probes = [po for po in switch.apply([m for _, m in tick(lb, 5.0)]) if po.data[12:14] == b"\x08\x00"]  # not ARP
    assert len(probes) == 3  # one per backend, spread over the first second: all due by now
    for po in probes:
        sent = switch.packet_out(po)
        # classify (a fabricated MAC) -> translate -> next hop: out to the router like client traffic
        assert sent.ports == [3]
        assert (sent.text["eth_dst"], sent.text["ipv4_src"], sent.text["nw_ttl"]) == ("aa:bb:cc:dd:ee:ff", "10.0.0.2",
                                                                                       63)
        assert sent.text["ipv4_dst"].startswith("10.11.12.")
    # an answer to the balancer's address goes to the controller, with the probe stage's cookie
    answer = fields_of(_answer("117.78.6.19", 80, probe_port(1), tcp.TCP_SYN | tcp.TCP_ACK, 1, 2))
    result = switch.process(answer, 3)
    assert result.ports == ["CONTROLLER"]
    assert cookies.stage_of(result.outputs[0].cookie) == cookies.STAGE_PROBE
    # other traffic to the balancer's address (not to a probe's port) is not punted
    stray = fields_of(_answer("117.78.6.19", 80, 40000, tcp.TCP_SYN | tcp.TCP_ACK, 1, 2))
    assert switch.process(stray, 3).ports == ["drop"]


# --- no backend left: refused at once, or a sorry server ---

def _all_down(lb, now=0.3):
    """Tick until every check has failed (nobody answers)."""
    for i in range(16):
        tick(lb, now + i * 0.25)
    return now + 16 * 0.25


def _packet_out_frame(msg):
    return bytes(msg.data)


def test_with_every_backend_down_a_new_connection_is_refused_at_once():
    lb = Balancer(_checked_config(panic_below=0))  # no panic: IPVS's way
    lb.switch_connected(1, 0.0)
    _learn_gateway(lb)
    now = _all_down(lb)
    (dpid, po), = lb.packet_in(1, 3, cookies.make(cookies.STAGE_SESSION, vip=1), _syn(40000), now)
    assert po.actions[0].port == 3  # straight back toward the router the SYN came from
    eth, ip, pkt = _parse(_packet_out_frame(po))
    seg = pkt.get_protocol(tcp.tcp)
    assert (eth.dst, ip.src, ip.dst, seg.src_port, seg.dst_port) == ("aa:bb:cc:dd:ee:ff", "117.78.6.19", "200.1.1.19",
                                                                     80, 40000)
    assert seg.bits == tcp.TCP_RST | tcp.TCP_ACK and seg.ack == 2  # the SYN's seq (1) + 1
    assert lb.snapshot(now)["counters"]["refused_no_backend"] == 1


def test_a_udp_datagram_to_a_vip_with_no_backend_gets_a_port_unreachable():
    from tests.helpers.frames import udp_frame
    doc = yaml.safe_load((ROOT / "topologies" / "cross_vlan.yaml").read_text())
    udp_vip = next(v for v in doc["vips"] if v["name"] == "echo-udp")
    udp_vip.update(health={"type": "udp", "interval": 1, "timeout": 0.5, "fall": 2}, panic_below=0)
    lb = Balancer(parse_config(doc))
    lb.switch_connected(1, 0.0)
    _learn_gateway(lb)
    now = _all_down(lb)
    vip_id = next(v["id"] for v in lb.snapshot(now)["vips"] if v["name"] == "echo-udp")
    datagram = udp_frame("aa:bb:cc:dd:ee:ff", "02:00:00:00:00:02", "200.1.1.19", "117.78.6.19", 40000, 5353)
    (_, po), = lb.packet_in(1, 3, cookies.make(cookies.STAGE_SESSION, vip=vip_id), datagram, now)
    msg = _parse(_packet_out_frame(po))[2].get_protocol(icmp.icmp)
    assert (msg.type, msg.code) == (icmp.ICMP_DEST_UNREACH, icmp.ICMP_PORT_UNREACH_CODE)
    assert msg.data.data == datagram[14:14 + 28]  # it quotes the datagram's IP header and first 8 bytes


def test_a_sorry_server_takes_new_connections_only_while_no_other_backend_can():
    doc = yaml.safe_load((ROOT / "topologies" / "worked_example.yaml").read_text())
    vip = doc["vips"][0]
    vip["backends"] = [{"ip": "10.11.12.11", "health": {"type": "tcp", "interval": 1, "timeout": 0.5, "fall": 2}},
                       {"ip": "10.11.12.12", "health": {"type": "tcp", "interval": 1, "timeout": 0.5, "fall": 2}},
                       {"ip": "10.11.12.13", "sorry": True}]
    lb = Balancer(parse_config(doc))
    lb.switch_connected(1, 0.0)
    _learn_gateway(lb)
    new_conn = cookies.make(cookies.STAGE_SESSION, vip=1)

    def picks(now):
        return {lb.running.ctx.scheme.decode(lb.packet_in(1, 1, new_conn, _syn(port), now)[0][1].info["eth_dst"])
                for port in range(int(now * 100), int(now * 100) + 6)}

    assert picks(0.1) == {IP("10.11.12.11"), IP("10.11.12.12")}  # the sorry server waits
    now = _all_down(lb)  # .11 and .12 fail; the sorry server is not checked
    assert picks(now) == {IP("10.11.12.13")}


def _first_action(flow_mod):
    return next(a for ins in flow_mod.instructions for a in getattr(ins, "actions", ()))


def test_a_switch_vip_with_no_backend_left_sends_new_connections_to_be_refused_and_back():
    doc = yaml.safe_load((ROOT / "topologies" / "worked_example.yaml").read_text())
    doc["vips"][0].update(selection="switch", scheduler="mh", panic_below=0,
                          health={"type": "tcp", "interval": 1, "timeout": 0.5, "rise": 1, "fall": 2})
    lb = Balancer(parse_config(doc))
    lb.switch_connected(1, 0.0)
    _learn_gateway(lb)
    out = []
    for i in range(16):
        out += tick(lb, 0.3 + i * 0.25)
    picks = [m for _, m in out if getattr(m, "table_id", None) == 20 and m.priority == 20]
    assert picks and _first_action(picks[-1]).port == ofp.OFPP_CONTROLLER  # to be refused
    (_, po), = lb.packet_in(1, 3, cookies.make(cookies.STAGE_SESSION, vip=1), _syn(40000), 4.5)
    assert _parse(_packet_out_frame(po))[2].get_protocol(tcp.tcp).bits == tcp.TCP_RST | tcp.TCP_ACK
    # a backend answers again: the pick goes back to the group, with every slot its own
    probe_cookie, back = cookies.make(cookies.STAGE_PROBE), []
    for i in range(8):
        for backend, (port, seq) in _probes(tick(lb, 5.0 + i * 0.25)).items():
            if backend == "10.11.12.12":
                back += lb.packet_in(1, 3, probe_cookie, _answer("117.78.6.19", 80, port,
                                                                 tcp.TCP_SYN | tcp.TCP_ACK, 1, seq + 1), 5.0 + i * 0.25)
    picks = [m for _, m in back if getattr(m, "table_id", None) == 20 and m.priority == 20]
    assert picks and _first_action(picks[-1]).group_id == 0x1B000001
    groups = [m for _, m in back if hasattr(m, "buckets")]
    assert {b.actions[1].value for b in groups[-1].buckets} == {"aa:bb:0a:0b:0c:0c"}


def test_a_vip_added_by_a_reload_that_shares_a_failed_check_starts_with_its_finding():
    lb = Balancer(_checked_config(panic_below=0))
    lb.switch_connected(1, 0.0)
    _learn_gateway(lb)
    now = _all_down(lb)
    doc = yaml.safe_load((ROOT / "topologies" / "worked_example.yaml").read_text())
    doc["vips"][0].update(health={"type": "tcp", "interval": 1, "timeout": 0.5, "rise": 1, "fall": 2}, panic_below=0)
    doc["vips"].append(dict(doc["vips"][0], name="alt", port=81,
                            health=dict(doc["vips"][0]["health"], port=80)))  # the same check of port 80
    doc["vips"][1]["backends"] = [{"ip": "10.11.12.11"}, {"ip": "10.11.12.12"}]
    lb.reconfigure(parse_config(doc), now)
    alt = next(v for v in lb.snapshot(now)["vips"] if v["name"] == "alt")
    assert [(b["health"], b["effective_weight"]) for b in alt["backends"]] == [("down", 0), ("down", 0)]


def test_an_edge_switch_back_has_its_backends_rechecked_at_once_and_up_in_rise_round_trips():
    """Issue 22: while the edge was away its backends' probes failed (down); when it is back they
    are probed at once, and each pass brings the next probe at once: up after ``rise`` round trips
    (here rise 3 of probes 10 s apart), not ``rise`` intervals."""
    lb = Balancer(_checked_config(interval=10, rise=3, fall=1))
    lb.switch_connected(1, 0.0)
    lb.switch_connected(2, 0.0)
    _learn_gateway(lb)
    probe_cookie = cookies.make(cookies.STAGE_PROBE)
    now = 0.0
    for _ in range(50):  # the first probes fail: the edge is away (no answers)
        tick(lb, now)
        now += 0.5
    assert {b["health"] for b in lb.snapshot(now)["vips"][0]["backends"]} == {"down"}
    lb.switch_disconnected(2)
    out = lb.switch_connected(2, now)  # the edge is back: its backends' probes go out with its pipeline
    assert len(_probes(out)) == 3
    for _ in range(12):  # 1.2 s: at most one regular probe would have gone out meanwhile
        for backend, (port, seq) in _probes(out).items():
            lb.packet_in(1, 3, probe_cookie, _answer("117.78.6.19", 80, port, tcp.TCP_SYN | tcp.TCP_ACK, 1, seq + 1),
                         now)
        now += 0.1
        out = tick(lb, now)
    assert {b["health"] for b in lb.snapshot(now)["vips"][0]["backends"]} == {"up"}


def test_only_answers_from_a_checked_backend_or_its_vip_reach_the_probe_stages_controller_port():
    """A flood of forged answers to the probes' ports from other addresses stops in the switch;
    unreachables come from routers, so from anywhere (through a meter of their own)."""
    from tests.helpers.oftables import Switch, fields_of

    lb = Balancer(_checked_config())
    switch = Switch()
    switch.apply([m for _, m in lb.switch_connected(1, 0.0)])
    port = probe_port(1)
    for source, passes in (("10.11.12.12", True), ("117.78.6.19", True), ("10.11.12.99", False), ("9.9.9.9", False)):
        answer = fields_of(_answer(source, 80, port, tcp.TCP_SYN | tcp.TCP_ACK, 1, 2))
        assert (switch.process(answer, 3).ports == ["CONTROLLER"]) == passes, source
    unreachable = packet.Packet()  # from the router: host unreachable
    unreachable.add_protocol(ethernet.ethernet(dst="02:00:00:00:00:02", src="aa:bb:cc:dd:ee:ff"))
    unreachable.add_protocol(ipv4.ipv4(ttl=64, proto=in_proto.IPPROTO_ICMP, src="10.0.0.1", dst="10.0.0.2"))
    unreachable.add_protocol(icmp.icmp(icmp.ICMP_DEST_UNREACH, 1, 0, icmp.dest_unreach(data=b"\0" * 28)))
    unreachable.serialize()
    assert switch.process(fields_of(bytes(unreachable.data)), 3).ports == ["CONTROLLER"]
