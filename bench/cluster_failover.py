"""Kill the leader of a 3-controller cluster under load (issue 24), on Mininet (cross_vlan, real
OVS userspace datapath, a real 3-member etcd on loopback). Meanwhile h1 opens RATE new
connections a second to `web` (port 80, controller-picked) and as many to `stream-fast`
(port 7002, switch-picked), each to be answered within 3 s (one SYN retransmission allowed),
and keeps STREAMS long-lived connections to `stream` (7000, controller-picked) and as many to
`stream-fast`, a line every 0.2 s each. Every PERIOD seconds the leader is stopped, by turns
`kill -9` (then started again) and SIGSTOP (resumed once another member has the switches);
lbapp.labfailover does it.

Reported per kill: when the new leader was elected and sent its role requests (its log's
times; OVS records roles in its database only every few seconds) and when `web` first answered
a connection at its first SYN again; their p50 and max; new connections that failed in a
hand-over (started from 3 s before a signal to the hand-over's end) and outside any; long-lived
connections broken.

    python bench/cluster_failover.py [--kills 10] [--rate 100] [--streams 3] [--lease 2] [--period 10]   (root)
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from lbapp.lab import MininetLab, wait_for  # noqa: E402
from lbapp.labfailover import NEW_PORTS, report, under_load  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--rate", type=float, default=100.0, help="new connections per second to each VIP")
    parser.add_argument("--streams", type=int, default=3, help="long-lived connections to each of two VIPs")
    parser.add_argument("--lease", type=int, default=2, help="the members' etcd lease, seconds")
    parser.add_argument("--period", type=float, default=10.0, help="seconds between kills")
    parser.add_argument("--debug", action="store_true", help="the controllers log every connection (-v)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lbapp-failover-"))
    print(f"logs in {work}", flush=True)
    with MininetLab("cross_vlan", work, debug=args.debug, controllers=3, lease=args.lease) as lab:
        for name in NEW_PORTS:
            vip = next(v for v in lab.cfg.vips if v.name == name)
            wait_for(lambda: lab.ask("h1", vip), 20, f"{name} to answer")
        run = under_load(lab, args.kills, args.rate, args.streams, args.period)
    print(f"lease {args.lease} s, 3 controllers, 3 etcd members")
    print("\n".join(report(run)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
