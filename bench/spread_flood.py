"""A spoofed flood spread over several controller-picked VIPs, each part under the per-VIP
overload limit, together over the punt meter (issue 23), on Mininet (cross_vlan, real OVS
userspace datapath): one `hping3 -i u520 --rand-source` (about 1,900 packets/s) per VIP from d1,
while h1 opens a new connection to `web` RATE times a second, each to be answered within 3 s
(one SYN retransmission allowed). Reported: legitimate connections answered, health verdicts
that took a backend down, sessions removed for failed backends, VIPs handed to the switch, late
probes not judged and VIPs that panicked (from the controller's log).

    python bench/spread_flood.py [--vips 3] [--seconds 15] [--rate 5] [--no-handover] [--at-balancer]   (root)

--vips 3: web (80/tcp), stream (7000/tcp), echo-udp (5353/udp); --vips 5 adds two copies of
stream on 7010 and 7011 (the flood needs no service behind them). --no-handover turns the
overload hand-over off (balancer.overload_above 0): the controller takes all the punt meter
passes, which shows what a busy controller does to health checks. --at-balancer aims the same
flood at the balancer's own address instead, at the probes' ports (forged SYN/ACKs, UDP and
ICMP echo replies: what the probe stage sends the controller); reported: the packet-ins the
controller took meanwhile. --source forges one source address (a VIP's, as the edges' source
NAT makes real answers look) instead of random ones.
"""
from __future__ import annotations

import argparse
import copy
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from lbapp.lab import SYSTEM_PYTHON, TOPOLOGIES, MininetLab, wait_for  # noqa: E402

CLIENT = TOPOLOGIES / "services" / "paced_client.py"
VIP = "117.78.6.19"
PARTS = [("-S", 80), ("-S", 7000), ("--udp", 5353), ("-S", 7010), ("-S", 7011)]
BALANCER = "10.0.0.2"  # cross_vlan's balancer address; the probes' source ports are 49152-57343
AT_BALANCER = [("-SA", 49200), ("--udp", 49201), ("--icmp --icmptype 0", 0), ("-SA", 50000), ("--udp", 50001)]


def write_config(path: Path, vips: int, handover: bool = True) -> None:
    doc = yaml.safe_load((TOPOLOGIES / "cross_vlan.yaml").read_text())
    if not handover:
        doc["balancer"]["overload_above"] = 0
    stream = next(v for v in doc["vips"] if v["name"] == "stream")
    for port in (7010, 7011)[:max(vips - 3, 0)]:
        doc["vips"].append({**copy.deepcopy(stream), "name": f"stream-{port}", "port": port})
    path.write_text(yaml.safe_dump(doc))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vips", type=int, default=3, choices=(3, 4, 5))
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=float, default=5.0, help="legitimate new connections per second")
    parser.add_argument("--no-handover", action="store_true", help="balancer.overload_above 0")
    parser.add_argument("--at-balancer", action="store_true", help="flood the balancer's address, probe ports")
    parser.add_argument("--source", default="", help="with --at-balancer: forge this source (a VIP's or a backend's "
                                                     "address) instead of random ones")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lbapp-spread-"))
    config = work / "lb.yaml"
    write_config(config, args.vips, handover=not args.no_handover)
    with MininetLab("cross_vlan", work, config, debug=False) as lab:
        web = next(v for v in lab.cfg.vips if v.name == "web")
        wait_for(lambda: lab.ask("h1", web), 20, "web to answer")
        d1, h1 = lab.net.get("d1"), lab.net.get("h1")
        log_before = len(lab.controller_log.read_text())
        packet_ins_before = lab.state()["packet_ins"]
        aim, parts = (BALANCER, AT_BALANCER) if args.at_balancer else (VIP, PARTS)
        floods = [d1.popen(["timeout", str(args.seconds), "hping3", *flag.split(), *(["-p", str(port)] if port else []),
                            "-i", "u520", *(["-a", args.source] if args.source else ["--rand-source"]), "-q", aim],
                           stderr=subprocess.PIPE, text=True)
                  for flag, port in parts[:args.vips]]
        time.sleep(0.5)
        out = h1.cmd(f"{SYSTEM_PYTHON} {CLIENT} {VIP} 80 {args.rate} {args.seconds - 1} 3").split()
        sent = 0
        for flood in floods:
            _, err = flood.communicate(timeout=30)
            found = re.search(r"(\d+) packets transmitted", err or "")
            sent += int(found[1]) if found else 0
        packet_ins = lab.state()["packet_ins"] - packet_ins_before
        time.sleep(3)  # verdicts still on their way
        log = lab.controller_log.read_text()[log_before:]
        downs = [re.search(r"\d+\.\d+\.\d+\.\d+", line)[0] for line in log.splitlines() if ": down (" in line]
        removed = sum(int(n) for n in re.findall(r"removed (\d+) sessions of failed backends", log))
        handed = re.findall(r"VIP (\S+) .*the switch picks for it", log)
        not_judged = sum(int(n) for n in re.findall(r"(\d+) late health probes not judged", log))
        panics = re.findall(r"VIP (\S+) .*: panic:", log)
        started, ok = int(out[0]), int(out[1])
        print(f"flood: {args.vips} parts at {'the balancer' if args.at_balancer else 'VIPs'}"
              f"{' from ' + args.source if args.source else ''}"
              f"{'' if not args.no_handover else ', hand-over off'}, {sent} packets in {args.seconds:.0f} s, "
              f"{packet_ins} packet-ins taken ({packet_ins / args.seconds:.0f}/s); legitimate to web: {ok}/{started} "
              f"answered ({ok / started:.1%}), p50 {float(out[3]):.1f} ms, p99 {float(out[4]):.1f} ms")
        print(f"health verdicts down: {len(downs)} {sorted(set(downs))}; sessions removed for failed backends: "
              f"{removed}; VIPs handed to the switch: {handed}")
        print(f"late probes not judged (the balancer was behind): {not_judged}; VIPs that panicked: {panics}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
