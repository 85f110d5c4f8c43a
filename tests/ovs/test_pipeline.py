"""The pipeline on a real OVS bridge (userspace datapath) with the controller connected.

Proof is traffic through the bridge (raw frames in namespaces, captured on the far side) and
``ovs-appctl ofproto/trace`` of what the installed flows do with a packet.
"""
import json
import re
import signal
import subprocess
import time
from pathlib import Path

import yaml
from os_ken.lib.packet.tcp import TCP_ACK, TCP_SYN

from lbapp import ctzone
from lbapp.reference import normalize
from tests.helpers.frames import collect, tcp_frame, udp_frame
from tests.helpers.net import PYTHON, sh, wait_for

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "topologies" / "worked_example.yaml"

CLIENT, VIP = "200.1.1.19", "117.78.6.19"
BALANCER_MAC, NEXT_HOP_MAC = "02:00:00:00:00:02", "aa:bb:cc:dd:ee:ff"


def config(tmp_path, **changes) -> Path:
    """The worked example with ``changes`` applied: keys are dotted paths."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    for dotted, value in changes.items():
        node = doc
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value
    path = tmp_path / "lb.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def datapath_actions(trace: str) -> str:
    match = re.search(r"^Datapath actions: (.*)$", trace, re.M)
    assert match, trace
    return match.group(1)


def routed(lab, gw: str, frames: list[bytes], dport: int, seconds: float = 3) -> dict[int, str]:
    """Send ``frames`` from the gateway's side; the client port -> backend of each that left
    routed to a backend (next hop's MAC, balancer's MAC, TTL down, the port and a good checksum)."""
    cap = lab.sniff(gw, seconds, 0x0800)
    lab.send(gw, *frames)
    seen = [s for s in collect(cap) if s.ip_src == CLIENT]
    for s in seen:
        assert (s.eth_src, s.eth_dst, s.ttl, s.dport) == (BALANCER_MAC, NEXT_HOP_MAC, 63, dport)
        assert s.l4_checksum_ok
    return {s.sport: s.ip_dst for s in seen}


def vip_state(lab, index: int = 0) -> dict:
    """The controller's state of the config's VIP ``index``, from its API."""
    return json.loads(sh(PYTHON, "-m", "lbapp.cli.main", "status", "--json", "--api", lab.api_url))["vips"][index]


def balancer_with_gateway(lab, cfg, extra: tuple[str, ...] = (), conf_file: bool = False):
    br = lab.bridge("lb", 1)
    gw = lab.host(br, "gw", 1, "10.0.0.1/24", NEXT_HOP_MAC)
    lab.controller(cfg, br, extra=extra, conf_file=conf_file)
    wait_for(lambda: NEXT_HOP_MAC in lab.dump(br, "table=40"), 20, "the next hop to be learned by ARP probe")
    return br, gw


def test_lbapp_runs_beside_another_os_ken_app_with_its_settings_from_an_os_ken_config_file(lab, tmp_path):
    # port, API port and balancer config from [DEFAULT] and [lbapp] of an oslo.config file
    br, gw = balancer_with_gateway(lab, config(tmp_path), extra=("--app", "tests.helpers.side_app"), conf_file=True)
    cap = lab.sniff(gw, 3, 0x0800)
    lab.send(gw, *[tcp_frame(NEXT_HOP_MAC, BALANCER_MAC, CLIENT, VIP, 40000 + i, 80) for i in range(3)])
    assert sorted(s.ip_dst for s in collect(cap) if s.ip_src == CLIENT) == ["10.11.12.11", "10.11.12.12",
                                                                             "10.11.12.13"]
    # the other app saw the same switch and got its answer through the same connection
    wait_for(lambda: "side app: switch 0000000000000001 has" in lab.controller_log.read_text(), 10,
             "the side app's port statistics")
    # and the packet-ins lbapp answered reached the other app too
    wait_for(lambda: lab.controller_log.read_text().count("side app: packet-in from switch 0000000000000001") >= 3,
             10, "the side app to see the packet-ins")
    state = json.loads(sh(PYTHON, "-m", "lbapp.cli.main", "status", "--json", "--api", lab.api_url))
    assert state["switches_connected"] == ["0000000000000001"] and state["vips"][0]["connections"] == 3


def _peer_answer(port: int, context=None) -> bytes:
    """What the controller sends back to a peer that says an OpenFlow hello (over TLS with
    ``context``): empty when it refused the peer."""
    import socket
    import ssl

    hello = bytes([4, 0, 0, 8, 0, 0, 0, 1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            conn = context.wrap_socket(raw) if context else raw
            conn.sendall(hello)
            return conn.recv(8)
        except (ssl.SSLError, ConnectionError, socket.timeout):
            return b""


def test_openflow_over_tls_lets_in_only_switches_with_a_certificate_the_ca_signed(lab, tmp_path):
    import ssl

    from tests.helpers.pki import make_pki

    pki = make_pki(tmp_path / "pki")
    sh("ovs-vsctl", "set-ssl", str(pki["switch.key"]), str(pki["switch.pem"]), str(pki["ca"]))
    try:
        tls = ("--tls-key", str(pki["controller.key"]), "--tls-cert", str(pki["controller.pem"]),
               "--tls-ca", str(pki["ca"]))
        br = lab.bridge("lb", 1)
        gw = lab.host(br, "gw", 1, "10.0.0.1/24", NEXT_HOP_MAC)
        lab.controller(config(tmp_path), br, extra=tls, scheme="ssl")  # programmed over TLS
        assert "OpenFlow over TLS on 127.0.0.1" in lab.controller_log.read_text()
        wait_for(lambda: NEXT_HOP_MAC in lab.dump(br, "table=40"), 20, "the next hop to be learned by ARP probe")

        def stranger(certificate: bool) -> ssl.SSLContext:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            if certificate:
                ctx.load_cert_chain(pki["stranger.pem"], pki["stranger.key"])
            return ctx

        assert _peer_answer(lab.of_port, stranger(certificate=True)) == b""  # self-signed: refused
        assert _peer_answer(lab.of_port, stranger(certificate=False)) == b""  # no certificate: refused
        assert _peer_answer(lab.of_port) == b""  # OpenFlow in clear: refused
        # the switch the CA vouched for is served throughout
        cap = lab.sniff(gw, 2, 0x0800)
        lab.send(gw, *[tcp_frame(NEXT_HOP_MAC, BALANCER_MAC, CLIENT, VIP, 40000 + i, 80) for i in range(2)])
        assert sorted(s.ip_dst for s in collect(cap) if s.ip_src == CLIENT) == ["10.11.12.11", "10.11.12.12"]
        assert "Traceback" not in lab.controller_log.read_text()
    finally:
        sh("ovs-vsctl", "del-ssl")


def test_a_forged_arp_from_another_port_does_not_move_the_next_hop_and_a_failover_does(lab, tmp_path):
    from tests.helpers.frames import arp_reply

    br, gw = balancer_with_gateway(lab, config(tmp_path))
    evil_mac, failover_mac = "02:00:00:00:00:66", "00:00:5e:00:01:07"
    attacker = lab.host(br, "evil", 2, "10.0.0.66/24", evil_mac)  # in the balancer's VLAN, on another port
    lab.send(attacker, *[arp_reply(evil_mac, "10.0.0.1", BALANCER_MAC, "10.0.0.2")] * 20,
             arp_reply(evil_mac, "10.0.0.1", "ff:ff:ff:ff:ff:ff", "10.0.0.1"))  # replies and a gratuitous ARP
    wait_for(lambda: "not believed" in lab.controller_log.read_text(), 5, "the forged ARPs to be weighed")
    stolen, kept = lab.sniff(attacker, 2, 0x0800), lab.sniff(gw, 2, 0x0800)
    lab.send(gw, *[tcp_frame(NEXT_HOP_MAC, BALANCER_MAC, CLIENT, VIP, 40000 + i, 80) for i in range(5)])
    assert [s for s in collect(stolen) if s.ip_src == CLIENT] == []
    # (in any order: the controller's replies to a burst may leave in another)
    assert sorted((s.sport, s.eth_dst) for s in collect(kept) if s.ip_src == CLIENT) == [
        (40000 + i, NEXT_HOP_MAC) for i in range(5)]
    assert evil_mac not in lab.dump(br, "table=40")
    # a VRRP failover on the gateway's port announces the virtual MAC: followed at once
    lab.send(gw, arp_reply(failover_mac, "10.0.0.1", "ff:ff:ff:ff:ff:ff", "10.0.0.1"))
    wait_for(lambda: failover_mac in lab.dump(br, "table=40"), 2, "the failover's MAC in the next-hop flows")
    log = lab.controller_log.read_text()
    assert f"next hop router 10.0.0.1 moved from {NEXT_HOP_MAC} port 1 to {failover_mac} port 1" in log
    assert re.search(r"not believed: \d+ ARP\(s\) claiming next hop router 10.0.0.1, the last from "
                     f"{evil_mac} on port 2: it answers on port 1", log), log


def test_a_flood_of_new_connections_hands_the_vip_to_the_switch_and_back(lab, tmp_path):
    cfg = config(tmp_path, **{"balancer.overload_above": 20, "balancer.overload_hold": 3, "balancer.punt_limit": 500})
    br, gw = balancer_with_gateway(lab, cfg)
    meters = sh("ovs-ofctl", "-O", "OpenFlow13", "dump-meters", br)
    assert re.search(r"meter=27 pktps burst bands=\s*type=drop rate=500 burst_size=50", meters), meters

    def state():
        return json.loads(sh(PYTHON, "-m", "lbapp.cli.main", "status", "--json", "--api", lab.api_url))

    lab.send(gw, *[tcp_frame(NEXT_HOP_MAC, BALANCER_MAC, CLIENT, VIP, 50000 + i, 80) for i in range(60)])
    wait_for(lambda: state()["vips"][0]["overloaded"], 5, "the VIP to be handed to the switch")
    assert "new connections/s, over 20: the switch picks for it" in lab.controller_log.read_text()
    # the switch picks now: new connections reach backends and the controller sets up none
    scheduled = state()["vips"][0]["connections"]
    cap = lab.sniff(gw, 3, 0x0800)
    lab.send(gw, *[tcp_frame(NEXT_HOP_MAC, BALANCER_MAC, CLIENT, VIP, 51000 + i, 80) for i in range(10)])
    seen = [s for s in collect(cap) if s.ip_src == CLIENT]
    assert sorted(s.sport for s in seen) == list(range(51000, 51010))
    assert {s.ip_dst for s in seen} <= {"10.11.12.11", "10.11.12.12", "10.11.12.13"}
    assert state()["vips"][0]["connections"] == scheduled
    # the flood over, the controller picks again after the hold
    wait_for(lambda: not state()["vips"][0]["overloaded"], 10, "the VIP to come back to the controller")
    lab.send(gw, tcp_frame(NEXT_HOP_MAC, BALANCER_MAC, CLIENT, VIP, 52000, 80))
    wait_for(lambda: "tp_src=52000" in lab.dump(br, "table=20"), 5, "a session flow for a new connection")
    # a connection the switch pinned meanwhile keeps its backend
    first = {s.sport: s.ip_dst for s in seen}[51000]
    cap = lab.sniff(gw, 2, 0x0800)
    lab.send(gw, tcp_frame(NEXT_HOP_MAC, BALANCER_MAC, CLIENT, VIP, 51000, 80, flags=0x10))
    assert [s.ip_dst for s in collect(cap) if s.ip_src == CLIENT] == [first]


def test_worked_example_connections_reach_backends_through_next_hop(lab, tmp_path):
    br, gw = balancer_with_gateway(lab, config(tmp_path))
    cap = lab.sniff(gw, 4, 0x0800)
    lab.send(gw, *[tcp_frame(NEXT_HOP_MAC, BALANCER_MAC, CLIENT, VIP, 40000 + i, 80) for i in range(3)])
    seen = sorted((s for s in collect(cap) if s.ip_src == CLIENT), key=lambda s: s.sport)
    # round robin over .11, .12, .13: the third connection gets the worked example's 10.11.12.13
    assert [(s.sport, s.ip_dst) for s in seen] == [(40000, "10.11.12.11"), (40001, "10.11.12.12"),
                                                  (40002, "10.11.12.13")]
    for s in seen:
        assert (s.eth_src, s.eth_dst, s.ttl, s.dport) == (BALANCER_MAC, NEXT_HOP_MAC, 63, 80)
        assert s.l4_checksum_ok
    # Later packets of the connection never reach the controller: the session rule carries them.
    flows = lab.dump(br, "table=20")
    assert "set_field:aa:bb:0a:0b:0c:0d->eth_dst" in flows
    actions = datapath_actions(lab.trace(
        br, f"in_port=1,tcp,dl_src={NEXT_HOP_MAC},dl_dst={BALANCER_MAC},nw_src={CLIENT},nw_dst={VIP},"
            "tp_src=40002,tp_dst=80,nw_ttl=64"))
    assert "userspace" not in actions
    assert f"eth(src={BALANCER_MAC},dst={NEXT_HOP_MAC})" in actions
    assert "set(ipv4(dst=10.11.12.13,ttl=63))" in actions  # src (the client) untouched


def test_arp_for_backend_answered_in_switch_with_fabricated_mac(lab, tmp_path):
    br, _ = balancer_with_gateway(lab, config(tmp_path))
    director = lab.host(br, "dir", 2, "10.0.0.10/24", "02:00:00:00:00:10")
    out = lab.ns(director, "arping", "-c", "1", "-w", "3", "-I", lab.iface(director), "10.11.12.13", check=False)
    assert "aa:bb:0a:0b:0c:0d" in out.lower(), out
    trace = lab.trace(br, "in_port=2,arp,arp_op=1,dl_src=02:00:00:00:00:10,dl_dst=ff:ff:ff:ff:ff:ff,"
                          "arp_sha=02:00:00:00:00:10,arp_spa=10.0.0.10,arp_tpa=10.11.12.13")
    assert "CONTROLLER" not in trace
    assert re.search(r"arp\(sip=10\.11\.12\.13,tip=10\.0\.0\.10,op=2,sha=aa:bb:0a:0b:0c:0d,"
                     r"tha=02:00:00:00:00:10\)", datapath_actions(trace)), trace
    # The balancer's own address and its VIP answer with the balancer's MAC.
    for ip in ("10.0.0.2", VIP):
        out = lab.ns(director, "arping", "-c", "1", "-w", "3", "-I", lab.iface(director), ip, check=False)
        assert BALANCER_MAC in out.lower(), out


def test_arp_proxy_in_controller_mode_answers_by_packet_out(lab, tmp_path):
    br, _ = balancer_with_gateway(lab, config(tmp_path, **{"balancer.arp_proxy": "controller"}))
    director = lab.host(br, "dir", 2, "10.0.0.10/24", "02:00:00:00:00:10")
    assert "CONTROLLER" in lab.trace(br, "in_port=2,arp,arp_op=1,arp_spa=10.0.0.10,arp_tpa=10.11.12.12")
    out = lab.ns(director, "arping", "-c", "1", "-w", "3", "-I", lab.iface(director), "10.11.12.12", check=False)
    assert "aa:bb:0a:0b:0c:0c" in out.lower(), out


def test_external_director_frames_are_translated_across_vlans(lab, tmp_path):
    br, gw = balancer_with_gateway(lab, config(tmp_path))
    director = lab.host(br, "dir", 2, "10.0.0.10/24", "02:00:00:00:00:10")
    # A Linux DR director: the VIP routed on-link via the backend IP, so the kernel ARPs for the
    # backend, gets the fabricated MAC and frames the VIP packet to it.
    lab.ns(director, "ip", "route", "add", f"{VIP}/32", "via", "10.11.12.13", "dev", lab.iface(director), "onlink")
    cap = lab.sniff(gw, 4, 0x0800)
    lab.ns(director, "python3", "-c", "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                                      f"[s.sendto(b'dr', ('{VIP}', 80)) for _ in range(3)]")
    seen = [s for s in collect(cap) if s.ip_src == "10.0.0.10"]
    assert seen, "no director packet came out toward the next hop"
    assert all((s.ip_dst, s.eth_dst, s.eth_src, s.ttl) == ("10.11.12.13", NEXT_HOP_MAC, BALANCER_MAC, 63)
               for s in seen), seen
    assert all(s.l4_checksum_ok for s in seen)
    neigh = lab.ns(director, "ip", "neigh", "show", "10.11.12.13")
    assert "aa:bb:0a:0b:0c:0d" in neigh, neigh


def test_unknown_next_hop_drops_and_counts(lab, tmp_path):
    br = lab.bridge("lb", 1)
    client = lab.host(br, "cli", 1, "10.0.0.50/24", "02:00:00:00:00:50")  # no gateway answers
    lab.controller(config(tmp_path), br)
    cap = lab.sniff(client, 3, 0x0800)
    lab.send(client, *[tcp_frame("02:00:00:00:00:50", BALANCER_MAC, CLIENT, VIP, 41000 + i, 80) for i in range(2)])
    assert not [s for s in collect(cap) if s.ip_src == CLIENT], "a packet left toward an unknown next hop"
    drop = [line for line in lab.dump(br, "table=40").splitlines() if "nw_dst=10.11.12.0/24" in line]
    # OVS attributes a megaflow's stats to the rules it translates to at revalidation, so the
    # count can include the controller's re-injected copies: at least both packets.
    assert len(drop) == 1 and "actions=drop" in drop[0], drop
    assert int(re.search(r"n_packets=(\d+)", drop[0]).group(1)) >= 2, drop


def test_gratuitous_arp_moves_the_next_hop_at_once(lab, tmp_path):
    br, gw = balancer_with_gateway(lab, config(tmp_path, **{"balancer.probe_interval": 600}))
    lab.ns(gw, "ip", "link", "set", lab.iface(gw), "address", "aa:bb:cc:dd:ee:01")
    lab.ns(gw, "arping", "-U", "-c", "1", "-I", lab.iface(gw), "10.0.0.1", check=False)
    wait_for(lambda: "aa:bb:cc:dd:ee:01" in lab.dump(br, "table=40"), 5, "the new next-hop MAC")
    assert NEXT_HOP_MAC not in lab.dump(br, "table=40")


def test_idle_session_expires_and_controller_forgets_it(lab, tmp_path):
    br, gw = balancer_with_gateway(lab, config(tmp_path, **{"vips.0.idle_timeout": 1}))
    lab.send(gw, tcp_frame(NEXT_HOP_MAC, BALANCER_MAC, CLIENT, VIP, 42000, 80))
    wait_for(lambda: "tp_src=42000" in lab.dump(br, "table=20"), 5, "the session flow")
    wait_for(lambda: "tp_src=42000" not in lab.dump(br, "table=20"), 10, "the session flow to expire")
    ended = re.compile(rf"ended \(idle\) after [\d.]+s: {CLIENT}:42000 -> 10\.11\.12\.11; 0 live")
    assert wait_for(lambda: ended.search(lab.controller_log.read_text()), 5, "the controller to see flow-removed")


def test_edge_switch_rewrites_reply_source_to_vip(lab, tmp_path):
    edge = lab.bridge("edge", 2)
    backend = lab.host(edge, "b13", 1, "10.11.12.13/24", "02:00:00:0b:0c:0d", gateway="10.11.12.1")
    router = lab.host(edge, "rtr", 2, "10.11.12.1/24", "aa:bb:cc:dd:ee:01")
    lab.controller(config(tmp_path), edge)
    cap = lab.sniff(router, 3, 0x0800)
    lab.send(backend, tcp_frame("02:00:00:0b:0c:0d", "aa:bb:cc:dd:ee:01", "10.11.12.13", CLIENT, 80, 40002,
                                flags=0x12),
             tcp_frame("02:00:00:0b:0c:0d", "aa:bb:cc:dd:ee:01", "10.11.12.13", CLIENT, 22, 40003, flags=0x12))
    seen = {s.sport: s for s in collect(cap) if s.dport in (40002, 40003)}
    assert seen[80].ip_src == VIP and seen[80].l4_checksum_ok  # the service port's reply: src = VIP
    assert seen[22].ip_src == "10.11.12.13"  # anything else from the backend is left alone
    actions = datapath_actions(lab.trace(edge, f"in_port=1,tcp,dl_src=02:00:00:0b:0c:0d,dl_dst=aa:bb:cc:dd:ee:01,"
                                               f"nw_src=10.11.12.13,nw_dst={CLIENT},tp_src=80,tp_dst=40002"))
    assert f"ipv4(src={VIP}" in actions, actions


import pytest  # noqa: E402


@pytest.mark.parametrize("scheme", [
    {"fabricated_mac.layout": "suffix"},
    {"fabricated_mac.layout": "split", "fabricated_mac.tag": "02:42"},
    {"fabricated_mac.scheme": "table",
     "fabricated_mac.table": {"10.11.12.11": "02:00:00:00:01:0b", "10.11.12.12": "02:00:00:00:01:0c",
                              "10.11.12.13": "02:00:00:00:01:0d"}},
], ids=["suffix", "split", "table"])
def test_other_mac_schemes_answer_arp_and_translate_in_switch(lab, tmp_path, scheme):
    from lbapp.config import load_config
    from lbapp.mac import format_mac

    cfg_path = config(tmp_path, **scheme)
    fab = format_mac(load_config(cfg_path).mac_scheme().encode(__import__("ipaddress").IPv4Address("10.11.12.13")))
    br, gw = balancer_with_gateway(lab, cfg_path)
    director = lab.host(br, "dir", 2, "10.0.0.10/24", "02:00:00:00:00:10")
    out = lab.ns(director, "arping", "-c", "1", "-w", "3", "-I", lab.iface(director), "10.11.12.13", check=False)
    assert fab in out.lower(), (fab, out)
    actions = datapath_actions(lab.trace(br, f"in_port=2,tcp,dl_src=02:00:00:00:00:10,dl_dst={fab},"
                                             f"nw_src=10.0.0.10,nw_dst={VIP},tp_src=5000,tp_dst=80,nw_ttl=64"))
    assert "set(ipv4(dst=10.11.12.13,ttl=63))" in actions and f"dst={NEXT_HOP_MAC}" in actions, actions


def test_controller_stops_cleanly_on_ctrl_c(lab, tmp_path):
    br = lab.bridge("lb", 1)
    lab.controller(config(tmp_path), br)
    proc = lab.procs[0]
    proc.send_signal(__import__("signal").SIGINT)
    assert proc.wait(timeout=10) == 0
    assert "lbapp: stopped" in lab.controller_log.read_text()


def test_lbapp_flows_explains_a_live_switch_with_a_foreign_flow(lab, tmp_path):
    import json
    import sys

    cfg = config(tmp_path)
    br, gw = balancer_with_gateway(lab, cfg)
    lab.send(gw, tcp_frame(NEXT_HOP_MAC, BALANCER_MAC, CLIENT, VIP, 43000, 80))
    wait_for(lambda: "tp_src=43000" in lab.dump(br, "table=20"), 5, "the session flow")
    subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "add-flow", br,
                    "cookie=0x42,table=0,priority=500,udp,tp_dst=67,actions=drop"], check=True)
    out = subprocess.run([sys.executable, "-m", "lbapp.cli.main", "flows", br, "-c", str(cfg), "--json"],
                         capture_output=True, text=True, cwd=ROOT, check=True)
    doc = json.loads(out.stdout)
    assert [f["cookie"] for f in doc["foreign"]] == ["0x42"]
    assert [(s["client"], s["backend"]) for s in doc["sessions"]] == [(f"{CLIENT}:43000", "10.11.12.11")]
    assert {f["owner"] for f in doc["stages"]["next_hop"]} >= {"route 10.11.12.0/24 via router"}


def policy_applied(lab) -> None:
    wait_for(lambda: "conntrack zone policy applied" in lab.controller_log.read_text(), 10,
             "the controller to apply the conntrack zone policy")


def test_switch_selection_picks_in_the_switch_and_pins_connections_through_reloads(lab, tmp_path):
    # idle timeout 15 s: longer than the gaps between this test's rounds of packets
    cfg = config(tmp_path, **{"vips.0.selection": "switch", "vips.0.scheduler": "mh", "vips.0.idle_timeout": 15})
    br, gw = balancer_with_gateway(lab, cfg)
    policy_applied(lab)  # by the controller, as the switch connected: pins outlive SYN_SENT's 30 s
    ctzone.flush()  # another bridge may have kept the datapath, and an earlier run's pins with it
    groups = lab.groups(br)
    assert "type=select" in groups and groups.count("bucket=") == 256, groups
    def backends_seen(first_port: int = 41000) -> dict[int, str]:
        return routed(lab, gw, [tcp_frame(NEXT_HOP_MAC, BALANCER_MAC, CLIENT, VIP, first_port + i, 80)
                                for i in range(60)], 80, seconds=4)

    first = backends_seen()
    assert len(first) == 60 and set(first.values()) == {"10.11.12.11", "10.11.12.12", "10.11.12.13"}
    assert backends_seen() == first  # the same connections, the same backends
    # no connection reached the controller: it made no session flow and no session
    assert "priority=100" not in lab.dump(br, "table=20")
    assert "session" not in lab.controller_log.read_text()
    # conntrack holds each connection's backend (zone 27, the backend's address as the mark)
    marks = sh("ovs-appctl", "dpctl/dump-conntrack", "-s", "zone=27")
    assert marks.count("dport=80") == 60 and "mark=168496141" in marks  # 10.11.12.13
    # and keeps it past OVS's 30 s SYN_SENT default: the zone policy is in force, not only in OVSDB
    timeouts = [int(t) for t in re.findall(r"timeout=(\d+)", marks)]
    assert len(timeouts) == 60 and min(timeouts) > 500, marks  # the policy lbapp run applied (600 s), not OVS's 30 s
    # lbapp flows shows the group as slots per backend
    shown = json.loads(sh(PYTHON, "-m", "lbapp.cli.main", "flows", br, "-c", str(cfg), "--json"))
    assert [(g["owner"], g["slots"]) for g in shown["groups"]] == [
        ("VIP web 117.78.6.19:80/tcp", {"10.11.12.11": 86, "10.11.12.12": 85, "10.11.12.13": 85})]

    def reload(backends: list[dict]) -> None:
        doc = yaml.safe_load(cfg.read_text())
        doc["vips"][0]["backends"] = backends
        doc["edges"][0]["backends"] = [b["ip"] for b in backends]
        cfg.write_text(yaml.safe_dump(doc))
        lab.controller_proc.send_signal(signal.SIGHUP)

    # drain .13: its connections stay on it (pinned), new ones avoid it
    reload([{"ip": "10.11.12.11"}, {"ip": "10.11.12.12"}, {"ip": "10.11.12.13", "weight": 0}])
    wait_for(lambda: "aa:bb:0a:0b:0c:0d" not in lab.groups(br), 20, "the reload")
    assert backends_seen() == first
    fresh = backends_seen(43000)
    assert len(fresh) == 60 and set(fresh.values()) == {"10.11.12.11", "10.11.12.12"}

    # drop .12 from the VIP: its connections stay on it (a lingering pin), new ones avoid it...
    reload([{"ip": "10.11.12.11"}, {"ip": "10.11.12.13"}])
    wait_for(lambda: "aa:bb:0a:0b:0c:0c" not in lab.groups(br), 20, "the reload")
    assert backends_seen() == first
    assert "10.11.12.12" not in backends_seen(45000).values()
    # ...until they have all been idle for the VIP's idle timeout: then the pin goes, and so would
    # they (to a backend with room); every other connection keeps its backend
    wait_for(lambda: "went idle" in lab.controller_log.read_text(), 40, "the removed backend's pin to idle out")
    after = backends_seen()
    assert len(after) == 60 and "10.11.12.12" not in after.values()
    assert {p: ip for p, ip in first.items() if ip != "10.11.12.12"} == \
        {p: ip for p, ip in after.items() if first[p] != "10.11.12.12"}


def test_session_flows_sent_as_bundles_take_effect_before_their_packets_are_reinjected(lab, tmp_path):
    # --bundle-min 1: every reply with a session flow-mod goes as a bundle (open, add, commit)
    br, gw = balancer_with_gateway(lab, config(tmp_path), extra=("--bundle-min", "1"))
    cap = lab.sniff(gw, 4, 0x0800)
    lab.send(gw, *[tcp_frame(NEXT_HOP_MAC, BALANCER_MAC, CLIENT, VIP, 42000 + i, 80) for i in range(30)])
    seen = [s for s in collect(cap) if s.ip_src == CLIENT]
    # every first packet was re-injected after its bundle committed, so its session carried it
    assert sorted(s.sport for s in seen) == list(range(42000, 42030))
    assert {s.ip_dst for s in seen} == {"10.11.12.11", "10.11.12.12", "10.11.12.13"}
    assert lab.dump(br, "table=20").count("priority=100") == 30
    # the controller saw 30 setups, each timed from the packet-in's arrival to its replies' send
    status = sh(PYTHON, "-m", "lbapp.cli.main", "status", "--rate", "--api", lab.api_url)
    assert re.search(r"setup latency: 30 setups, p50 <= [\d.]+ ms", status), status
    assert "OpenFlow error" not in lab.controller_log.read_text()


def test_a_restarted_controller_takes_back_the_sessions_in_the_switch(lab, tmp_path):
    cfg = config(tmp_path)
    br, gw = balancer_with_gateway(lab, cfg)
    lab.send(gw, *[tcp_frame(NEXT_HOP_MAC, BALANCER_MAC, CLIENT, VIP, 44000 + i, 80) for i in range(3)])
    wait_for(lambda: lab.dump(br, "table=20").count("priority=100") == 3, 10, "three session flows")
    lab.controller_proc.send_signal(signal.SIGINT)
    lab.controller_proc.wait(timeout=20)
    lab.controller(cfg, br)  # a new run: it reads the session table back when the switch connects
    wait_for(lambda: "took back 3 sessions" in lab.controller_log.read_text(), 20, "the sessions to be taken back")
    assert lab.dump(br, "table=20").count("priority=100") == 3  # the connections' flows were never touched


def test_a_backend_drained_through_the_api_takes_no_new_connection_and_the_file_keeps_its_comments(lab, tmp_path):
    cfg = tmp_path / "lb.yaml"
    cfg.write_text(EXAMPLE.read_text())  # as shipped, with its comments
    br, gw = balancer_with_gateway(lab, cfg)
    out = sh(PYTHON, "-m", "lbapp.cli.main", "backend", "drain", "web", "10.11.12.12", "--api", lab.api_url)
    assert out.startswith("drain 10.11.12.12 of web")
    text = cfg.read_text()
    assert "{ip: 10.11.12.12, drain: true}" in text and "# the OVS bridge the pipeline runs on" in text
    state = json.loads(sh(PYTHON, "-m", "lbapp.cli.main", "status", "--json", "--api", lab.api_url))
    assert state["switches_connected"] == ["0000000000000001"]
    assert [(b["ip"], b["admin"], b["effective_weight"]) for b in state["vips"][0]["backends"]] == [
        ("10.11.12.11", "up", 1), ("10.11.12.12", "drain", 0), ("10.11.12.13", "up", 1)]
    # the reload went into the switch: new connections through the bridge avoid the drained backend
    cap = lab.sniff(gw, 6, 0x0800)
    lab.send(gw, *[tcp_frame(NEXT_HOP_MAC, BALANCER_MAC, CLIENT, VIP, 44000 + i, 80) for i in range(6)])
    seen = sorted((s.sport, s.ip_dst) for s in collect(cap) if s.ip_src == CLIENT)
    assert len(seen) == 6 and {ip for _, ip in seen} == {"10.11.12.11", "10.11.12.13"}, seen
    # the same through the CLI: a bad request is one line naming what was wrong
    bad = subprocess.run([PYTHON, "-m", "lbapp.cli.main", "backend", "weight", "web", "10.11.12.12", "-1", "--api",
                          lab.api_url], capture_output=True, text=True)
    assert bad.returncode == 2 and "vips[0].backends[1].weight: Input should be greater than or equal to 0" in bad.stderr
    assert "{ip: 10.11.12.12, drain: true}" in cfg.read_text()  # the refused change wrote nothing


def test_lbapp_trace_names_each_rule_a_packet_hits_on_a_live_bridge(lab, tmp_path):
    cfg = config(tmp_path)
    br, gw = balancer_with_gateway(lab, cfg)
    lab.send(gw, tcp_frame(NEXT_HOP_MAC, BALANCER_MAC, CLIENT, VIP, 45000, 80))
    wait_for(lambda: "tp_src=45000" in lab.dump(br, "table=20"), 5, "the session flow")
    flow = (f"in_port=1,tcp,dl_src={NEXT_HOP_MAC},dl_dst={BALANCER_MAC},nw_src={CLIENT},nw_dst={VIP},"
            "tp_src=45000,tp_dst=80,nw_ttl=64")
    out = sh(PYTHON, "-m", "lbapp.cli.main", "trace", br, flow, "-c", str(cfg))
    notes = [line.strip() for line in out.splitlines() if line.strip().startswith("[lbapp")]
    assert notes[0] == "[lbapp stage classify: vip, VIP web 117.78.6.19:80/tcp]"
    assert re.fullmatch(r"\[lbapp stage session: connection, session \d+\]", notes[1]), notes
    assert notes[2:] == ["[lbapp stage translate: fabricated, route 10.11.12.0/24 via router]",
                         "[lbapp stage next_hop: route, route 10.11.12.0/24 via router]"]
    assert "set(ipv4(dst=10.11.12.11" in datapath_actions(out)  # the trace itself is all there
    assert "connection:" not in out  # a session holds it: nothing to pick
    # a new connection: the trace ends at the controller, which says whom it would pick, and why;
    # the SYN sent next goes there
    opening = flow.replace("tp_src=45000", "tp_src=45001")
    out = sh(PYTHON, "-m", "lbapp.cli.main", "trace", br, opening, "-c", str(cfg), "--api", lab.api_url)
    assert "[lbapp stage session: new_connection, VIP web 117.78.6.19:80/tcp]" in out
    picked = re.search(r"^New connection: rr would pick (10\.11\.12\.\d+) now: round robin", out, re.M)
    assert picked, out
    cap = lab.sniff(gw, 1, 0x0800)
    lab.send(gw, tcp_frame(NEXT_HOP_MAC, BALANCER_MAC, CLIENT, VIP, 45001, 80))
    assert [s.ip_dst for s in collect(cap) if s.ip_src == CLIENT] == [picked[1]]


def test_a_reload_of_one_vip_sends_its_flows_alone_and_the_bridge_holds_what_a_fresh_start_installs(lab, tmp_path):
    """Before (#27): every reload sent the whole pipeline again under a new generation."""
    cfg = config(tmp_path)
    br, gw = balancer_with_gateway(lab, cfg)
    lab.send(gw, *[tcp_frame(NEXT_HOP_MAC, BALANCER_MAC, CLIENT, VIP, 46000 + i, 80) for i in range(3)])
    wait_for(lambda: lab.dump(br, "table=20").count("priority=100") == 3, 10, "three session flows")
    doc = yaml.safe_load(cfg.read_text())
    doc["vips"][0]["backends"].append({"ip": "10.11.12.14"})
    doc["edges"][0]["backends"].append("10.11.12.14")
    cfg.write_text(yaml.safe_dump(doc))
    lab.controller_proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reconfigured" in lab.controller_log.read_text(), 10, "the reload")
    said = re.search(r"reconfigured: 1 VIPs changed: (\d+) flows sent, (\d+) removed, (\d+) groups changed",
                     lab.controller_log.read_text())
    assert said and int(said[1]) + int(said[2]) <= 4 and said[3] == "1", said  # .14's pin flow (and its bucket)
    assert lab.dump(br, "table=20").count("priority=100") == 3  # the connections' flows untouched
    # new connections reach the added backend
    cap = lab.sniff(gw, 4, 0x0800)
    lab.send(gw, *[tcp_frame(NEXT_HOP_MAC, BALANCER_MAC, CLIENT, VIP, 46100 + i, 80) for i in range(4)])
    assert sorted(s.ip_dst for s in collect(cap) if s.ip_src == CLIENT) == [f"10.11.12.1{i}" for i in range(1, 5)]
    reloaded = normalize(lab.dump(br), sessions=False)
    # a controller started on the new file installs just that
    lab.controller_proc.send_signal(signal.SIGINT)
    lab.controller_proc.wait(timeout=20)
    lab.controller(cfg, br)
    wait_for(lambda: NEXT_HOP_MAC in lab.dump(br, "table=40") and "took back" in lab.controller_log.read_text(), 20,
             "the new run's pipeline")
    assert normalize(lab.dump(br), sessions=False) == reloaded


def test_a_hostile_file_on_reload_is_refused_at_once_and_a_good_one_still_applies(lab, tmp_path):
    from tests.helpers.hostile import alias_bomb

    cfg = config(tmp_path)
    good = cfg.read_text()
    br, gw = balancer_with_gateway(lab, cfg)
    for hostile in (alias_bomb(), b"vips: " + b"[" * 900 + b"]" * 900 + b"\n", good.encode().replace(b"web", b"w\xffb")):
        cfg.write_bytes(hostile)
        refusals = lab.controller_log.read_text().count("reload refused")
        started = time.monotonic()
        lab.controller_proc.send_signal(signal.SIGHUP)
        wait_for(lambda: lab.controller_log.read_text().count("reload refused") > refusals, 5, "the refusal")
        assert time.monotonic() - started < 1.5
    # the controller went on serving: a new connection is scheduled and forwarded
    cap = lab.sniff(gw, 3, 0x0800)
    lab.send(gw, tcp_frame(NEXT_HOP_MAC, BALANCER_MAC, CLIENT, VIP, 46000, 80))
    assert [s.ip_dst for s in collect(cap) if s.ip_src == CLIENT] == ["10.11.12.11"]
    # and a good file still reloads, its signal handled as before
    cfg.write_text(good.replace("scheduler: rr", "scheduler: wrr"))
    lab.controller_proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reconfigured" in lab.controller_log.read_text(), 5, "the good reload")
    assert len(max(lab.controller_log.read_text().splitlines(), key=len)) < 2000  # no line echoes a bomb
    import urllib.request
    with urllib.request.urlopen(f"{lab.api_url}/metrics", timeout=5) as r:
        metrics = r.read().decode()
    assert 'lbapp_config_reloads_total{result="refused"} 3.0' in metrics
    assert 'lbapp_config_reloads_total{result="applied"} 1.0' in metrics


def test_counts_follow_the_switch_after_flows_vanished_while_it_was_away(lab, tmp_path):
    import urllib.request

    def sessions() -> int:
        with urllib.request.urlopen(f"{lab.api_url}/v1/state", timeout=5) as r:
            return json.loads(r.read())["sessions"]

    cfg = config(tmp_path)
    br, gw = balancer_with_gateway(lab, cfg)
    lab.send(gw, *[tcp_frame(NEXT_HOP_MAC, BALANCER_MAC, CLIENT, VIP, 48000 + i, 80) for i in range(5)])
    wait_for(lambda: sessions() == 5, 10, "five sessions")
    # the switch loses its controller (pointed at a closed port: del-controller would wipe its
    # tables); meanwhile its session flows idle out, unheard: only the connections' flows go,
    # the table is kept (its mark stays)
    sh("ovs-vsctl", "set-controller", br, "tcp:127.0.0.1:9")
    wait_for(lambda: "disconnected" in lab.controller_log.read_text(), 10, "the controller to see the switch go")
    sh("ovs-ofctl", "-O", "OpenFlow13", "del-flows", br,
       f"table=20,tcp,nw_src={CLIENT},cookie=0x1b30000000000000/0xffff000000000000")
    assert "tp_src=48000" not in lab.dump(br, "table=20") and sessions() == 5  # the count is stale now
    sh("ovs-vsctl", "set-controller", br, f"tcp:127.0.0.1:{lab.of_port}")
    wait_for(lambda: sessions() == 0, 10, "the count to follow the switch's session table")
    assert "5 sessions are no longer in its session table" in lab.controller_log.read_text()


def test_a_connection_claiming_a_live_switchs_datapath_id_is_refused_and_sent_nothing(lab, tmp_path):
    """An impostor connects again and again claiming the balancer's datapath id while the real
    switch is connected (issue 22): each is refused once the switch answers an echo, none gets a
    flow-mod or packet-out, and the switch's own traffic goes on (>= 99% of new connections)."""
    import importlib.util
    import sys
    import threading

    spec = importlib.util.spec_from_file_location("ofswitch", ROOT / "bench" / "ofswitch.py")
    ofswitch = sys.modules.setdefault("ofswitch", importlib.util.module_from_spec(spec))
    spec.loader.exec_module(ofswitch)  # the benchmarks' fake switch, standard library only
    br, gw = balancer_with_gateway(lab, config(tmp_path))
    stop, tries, sent = threading.Event(), [], {"flow_mods": 0, "packet_outs": 0}

    def impostor() -> None:
        while not stop.is_set():
            fake = ofswitch.FakeSwitch("127.0.0.1", lab.of_port, 1, 0)  # claims the balancer's datapath id
            try:
                fake.handshake(settle=0.5)
            except OSError:  # hung up on
                pass
            finally:
                sent["flow_mods"] += fake.flow_mods
                sent["packet_outs"] += fake.packet_outs
                fake.close()
                tries.append(1)

    thread = threading.Thread(target=impostor, daemon=True)
    thread.start()
    forwarded: dict[int, str] = {}
    try:
        for batch in range(10):
            frames = [tcp_frame(NEXT_HOP_MAC, BALANCER_MAC, CLIENT, VIP, 45000 + batch * 20 + i, 80) for i in range(20)]
            forwarded.update(routed(lab, gw, frames, 80, seconds=1.5))
    finally:
        stop.set()
        thread.join(10)
    assert len(forwarded) >= 198, f"{len(forwarded)} of 200 new connections forwarded"
    assert len(tries) >= 5 and sent == {"flow_mods": 0, "packet_outs": 0}, (len(tries), sent)
    log = lab.controller_log.read_text()
    assert log.count("refused the connection from 127.0.0.1:") >= len(tries) - 1, log[-2000:]
    assert "takes over" not in log

def test_pin_conntrack_costs_one_packet_in_per_connection_and_counts_what_the_switch_saw(lab, tmp_path):
    # lc: each new connection to the least loaded backend, by counts the switch keeps current
    cfg = config(tmp_path, **{"vips.0.pin": "conntrack", "vips.0.scheduler": "lc", "vips.0.idle_timeout": 2})
    br, gw = balancer_with_gateway(lab, cfg)
    policy_applied(lab)  # by the controller, as the switch connected: pins outlive SYN_SENT's 30 s
    ctzone.flush()  # an earlier test's pins of the same client ports would hold these connections

    def send(flags: int) -> dict[int, str]:
        return routed(lab, gw, [tcp_frame(NEXT_HOP_MAC, BALANCER_MAC, CLIENT, VIP, 43000 + i, 80, flags=flags)
                                for i in range(3)], 80)

    def picked() -> int:  # connections the controller picked for (packet-ins count ARP too)
        return vip_state(lab)["connections"]

    first = send(TCP_SYN)
    assert sorted(first.values()) == ["10.11.12.11", "10.11.12.12", "10.11.12.13"]  # least connection
    assert picked() == 3
    # the connections' later packets follow their pins in conntrack: not picked again, no flow of their own
    assert send(TCP_ACK) == first
    assert picked() == 3
    assert "priority=100" not in lab.dump(br, "table=20")
    # lbapp flows names the pin flows: per backend, the counting flow and the epoch's copy
    shown = json.loads(sh(PYTHON, "-m", "lbapp.cli.main", "flows", br, "-c", str(cfg), "--json"))
    pins = sorted((f["role"], f["owner"]) for f in shown["stages"]["session"] if f["role"].startswith("pinned"))
    assert pins == [("pinned", "VIP web 117.78.6.19:80/tcp")] * 3 + [("pinned_seen", "VIP web 117.78.6.19:80/tcp")] * 3
    marks = sh("ovs-appctl", "dpctl/dump-conntrack", "-s", "zone=27")
    assert sorted(int(m) for m in re.findall(r"dport=80\).*?mark=(\d+)", marks)) == [168496139, 168496140, 168496141]
    # a later packet keeps the pin for the zone policy's time (tcp_syn_recv), not OVS's 30 s
    timeouts = [int(t) for t in re.findall(r"timeout=(\d+)", marks)]
    assert len(timeouts) == 3 and min(timeouts) > 500, marks  # the policy lbapp run applied (600 s)
    # live while they send: each backend holds one, epoch after epoch (2 s each)...
    def keep_sending() -> list[int]:
        lab.send(gw, *[tcp_frame(NEXT_HOP_MAC, BALANCER_MAC, CLIENT, VIP, 43000 + i, 80, flags=TCP_ACK)
                       for i in range(3)])
        return [b["sessions"] for b in vip_state(lab)["backends"]]

    sending_since = time.monotonic()
    while time.monotonic() - sending_since < 5:  # past two epochs: the counts are the switch's by now
        keep_sending()
    assert wait_for(lambda: keep_sending() == [1, 1, 1], 6, "the live connections to be counted")
    assert vip_state(lab)["pin"] == "conntrack" and picked() == 3
    # ...and once idle for a whole epoch, no longer counted
    wait_for(lambda: vip_state(lab)["sessions"] == 0, 8, "idle pinned connections to stop counting")


def test_pin_conntrack_holds_a_udp_flow_to_the_backend_its_first_datagram_was_picked_for(lab, tmp_path):
    cfg = config(tmp_path, **{"vips.0.pin": "conntrack", "vips.0.scheduler": "lc", "vips.0.protocol": "udp",
                              "vips.0.port": 5353})
    br, gw = balancer_with_gateway(lab, cfg)
    policy_applied(lab)  # by the controller, as the switch connected: pins outlive SYN_SENT's 30 s
    ctzone.flush()

    def send() -> dict[int, str]:
        return routed(lab, gw, [udp_frame(NEXT_HOP_MAC, BALANCER_MAC, CLIENT, VIP, 45000 + i, 5353)
                                for i in range(3)], 5353)

    first = send()
    assert sorted(first.values()) == ["10.11.12.11", "10.11.12.12", "10.11.12.13"]
    # the next datagrams follow their pins: not picked again
    assert send() == first and vip_state(lab)["connections"] == 3
    assert "priority=100" not in lab.dump(br, "table=20")
