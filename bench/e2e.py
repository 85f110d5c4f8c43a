"""End to end on Mininet with real OVS (userspace datapath): new TCP connections per second and
iperf3 throughput, through the VIP and straight to the same backend, on the cross_vlan topology,
same offload settings both ways. New connections go through three VIPs on the same backend: two
whose connections the controller schedules (``selection: controller``), pinned by a flow per
connection (``pin: flow``) or in conntrack (``pin: conntrack``), and one whose the switch picks
(``selection: switch``). Each connection rate comes with the median time to connect.

    python bench/e2e.py [--seconds 5] [--runs 5]     (root)
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from lbapp import ctzone  # noqa: E402
from lbapp.lab import SYSTEM_PYTHON, TOPOLOGIES, MininetLab, wait_for  # noqa: E402

LOAD = TOPOLOGIES / "services" / "conn_load.py"
VIP, BACKEND = "117.78.6.19", "10.11.12.11"
IPERF_PORT = 5201
# The edge rewrites every reply from a VIP's service port on a backend to the VIP (the source's
# method keys source NAT on backend and port), so the direct path uses ports in no VIP.
DIRECT_STREAM, DIRECT_IPERF = 7001, 5202
SWITCH_PICKS = 7002  # the same stream service, through cross_vlan's VIP with selection: switch
SWITCH_IPERF = 5203  # an iperf3 server behind a VIP with selection: switch
CONNTRACK_PINS = 7003  # the same stream service, through a VIP with pin: conntrack


def config(path: Path) -> Path:
    doc = yaml.safe_load((TOPOLOGIES / "cross_vlan.yaml").read_text())
    # the controller's own path, whatever the rate: no SYN-flood defence (its punt meter would
    # drop first packets above 4000/s, and past 2000 new connections/s the switch would pick)
    doc["balancer"].update(punt_limit=1_000_000, overload_above=0)
    # one backend for the comparison, so the VIP and the direct path end at the same server
    for vip in doc["vips"]:
        if vip["name"] in ("stream", "stream-fast"):  # stream-fast: the switch picks (port SWITCH_PICKS)
            vip["backends"] = [{"ip": BACKEND}]
        if vip["name"] == "stream":  # its session flows gone soon after its run: iperf then starts clean
            vip["idle_timeout"] = 5
    doc["vips"].append({"name": "stream-ct", "ip": VIP, "port": CONNTRACK_PINS, "protocol": "tcp", "scheduler": "rr",
                        "pin": "conntrack", "idle_timeout": 10, "backends": [{"ip": BACKEND}]})
    doc["vips"].append({"name": "iperf", "ip": VIP, "port": IPERF_PORT, "protocol": "tcp", "scheduler": "rr",
                        "idle_timeout": 10, "backends": [{"ip": BACKEND}]})
    doc["vips"].append({"name": "switch-iperf", "ip": VIP, "port": SWITCH_IPERF, "protocol": "tcp", "scheduler": "mh",
                        "selection": "switch", "idle_timeout": 20, "backends": [{"ip": BACKEND}]})
    doc["edges"][0]["backends"] = sorted({b["ip"] for v in doc["vips"] for b in v["backends"]})
    path.write_text(yaml.safe_dump(doc))
    return path


def state(lab) -> dict:
    with urllib.request.urlopen(f"{lab.api_url}/v1/state", timeout=10) as r:
        return json.loads(r.read())


def packet_ins(lab) -> int:
    return state(lab)["packet_ins"]


def sessions(lab) -> int:
    return state(lab)["sessions"]


def connections(lab, target: str, port: int, seconds: float, workers: int = 8) -> tuple[float, float, float]:
    """New connections per second, the controller's packet-ins per connection meanwhile, and the
    median time to connect (ms)."""
    before = packet_ins(lab)
    out = lab.net.get("h1").cmd(f"{SYSTEM_PYTHON} {LOAD} {target} {port} {seconds} {workers}").split()
    done, failed = int(out[0]), int(out[1])
    if failed:
        print(f"  {target}:{port}: {failed} connections failed", file=sys.stderr)
    return done / seconds, (packet_ins(lab) - before) / max(done, 1), float(out[2])


def iperf(lab, target: str, port: int, seconds: float) -> float:
    out = lab.net.get("h1").cmd(f"iperf3 -c {target} -p {port} -t {seconds} -J")
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lbapp-e2e-"))
    rows: dict[str, list[float]] = {"conn/s via VIP": [], "packet-ins/conn": [], "connect ms VIP": [],
                                    "conn/s ct pin": [], "packet-ins/conn ct": [], "connect ms ct": [],
                                    "conn/s switch": [], "connect ms switch": [], "conn/s direct": [],
                                    "connect ms direct": [],
                                    "Gbit/s via VIP": [], "Gbit/s switch": [], "Gbit/s direct": []}
    with MininetLab("cross_vlan", work, config(work / "lb.yaml"), debug=False) as lab:
        # the load client closes thousands of connections a second: let it reuse ports in
        # TIME_WAIT, or both paths soon measure the client's port exhaustion instead
        lab.net.get("h1").cmd("sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range='1024 65000'")
        servers = [lab.net.get("b1").popen(["iperf3", "-s", "-p", str(p)])
                   for p in (IPERF_PORT, SWITCH_IPERF, DIRECT_IPERF)]
        try:
            for _ in range(args.runs):  # interleaved, side by side
                # each from a clean state: no pins of an earlier run (a reused client port would
                # find one), and the session flows of pin: flow last, gone before iperf
                for name, ins, ms, (target, port) in (
                        ("conn/s direct", None, "connect ms direct", (BACKEND, DIRECT_STREAM)),
                        ("conn/s switch", None, "connect ms switch", (VIP, SWITCH_PICKS)),
                        ("conn/s ct pin", "packet-ins/conn ct", "connect ms ct", (VIP, CONNTRACK_PINS)),
                        ("conn/s via VIP", "packet-ins/conn", "connect ms VIP", (VIP, 7000))):
                    ctzone.flush()
                    rate, punted, connect_ms = connections(lab, target, port, args.seconds)
                    rows[name].append(rate)
                    rows[ms].append(connect_ms)
                    if ins:
                        rows[ins].append(punted)
                wait_for(lambda: sessions(lab) == 0, 60, "the session flows to idle out")
                rows["Gbit/s via VIP"].append(iperf(lab, VIP, IPERF_PORT, args.seconds))
                rows["Gbit/s switch"].append(iperf(lab, VIP, SWITCH_IPERF, args.seconds))
                rows["Gbit/s direct"].append(iperf(lab, BACKEND, DIRECT_IPERF, args.seconds))
        finally:
            for server in servers:
                server.terminate()
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"{'measure':<16}{'median':>10}   runs")
    for k, v in rows.items():
        print(f"{k:<16}{med[k]:>10.2f}   {', '.join(f'{x:.2f}' for x in v)}")
    print(f"new connections via VIP / direct: {med['conn/s via VIP'] / med['conn/s direct']:.2f}")
    print(f"  with pin: conntrack / direct:    {med['conn/s ct pin'] / med['conn/s direct']:.2f}"
          f"  (connect p50 {med['connect ms ct'] / med['connect ms switch']:.2f}x the switch path's)")
    print(f"  with selection: switch / direct: {med['conn/s switch'] / med['conn/s direct']:.2f}")
    print(f"throughput via VIP / direct:      {med['Gbit/s via VIP'] / med['Gbit/s direct']:.2f}")
    print(f"  with selection: switch / direct: {med['Gbit/s switch'] / med['Gbit/s direct']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
