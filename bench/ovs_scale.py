"""OVS's side of scale: how fast session flows (each with the VIP's idle timeout) get installed
on a real bridge (userspace datapath) as their number grows. The design brief found OVS 3.1
installing timed flows ever more slowly when they come one at a time (every flow-table change
walks all rules that carry a timeout); lbapp writes the replies to a burst of packet-ins together,
and a burst with at least ``--bundle-min`` flow-mods as one ONF bundle (one table change).
Three runs: bursts in bundles (the default), bursts without bundles, one reply at a time.

    python bench/ovs_scale.py [--count 110000] [--rate 6000]      (root)

A namespace sends SYNs for COUNT new connections at RATE/s; each is a packet-in, a session
flow-mod and a packet-out. Every second the session table's flow count is read
(ovs-ofctl dump-aggregate); the table gives the install rate at each size.
"""
from __future__ import annotations

import argparse
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

from lbapp.pipeline.bundles import BUNDLE_MIN_DEFAULT  # noqa: E402
from tests.helpers.net import PYTHON, Lab, wait_for  # noqa: E402

BALANCER_MAC = "02:00:00:00:00:02"


def session_flows(bridge: str) -> int:
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-aggregate", bridge, "table=20"],
                         capture_output=True, text=True).stdout
    return int(re.search(r"flow_count=(\d+)", out).group(1))


def run(count: int, rate: float, burst: int, bundle_min: int, work: Path, name: str) -> list[tuple[float, int]]:
    doc = yaml.safe_load((ROOT / "topologies" / "worked_example.yaml").read_text())
    doc["vips"][0]["idle_timeout"] = 600  # nothing expires during the run
    cfg = work / "lb.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    lab = Lab(name, work)
    try:
        br = lab.bridge("br", 1)
        lab.host(br, "gw", 1, "10.0.0.1/24", "aa:bb:cc:dd:ee:ff")  # the next hop, answering the probes
        cli = lab.host(br, "cl", 2, "10.0.0.50/24", "02:00:00:00:00:50")
        lab.controller(cfg, br, extra=("--burst", str(burst), "--bundle-min", str(bundle_min)))
        wait_for(lambda: "aa:bb:cc:dd:ee:ff" in lab.dump(br, "table=40"), 20, "the next hop")
        base = session_flows(br)
        sender = subprocess.Popen(["ip", "netns", "exec", cli, PYTHON, "-m", "tests.helpers.synflood", lab.iface(cli),
                                   "02:00:00:00:00:50", BALANCER_MAC, "117.78.6.19", "80", str(count), str(rate)],
                                  cwd=ROOT)
        samples = [(time.monotonic(), 0)]
        while True:
            time.sleep(1)
            samples.append((time.monotonic(), session_flows(br) - base))
            sender_done = sender.poll() is not None
            if sender_done and samples[-1][1] == samples[-2][1]:
                break
        return samples
    finally:
        lab.close()


def rates_at(samples: list[tuple[float, int]], marks: list[int]) -> dict[int, float]:
    """Install rate (flows/s) over the second in which the count passed each mark."""
    out = {}
    for (t0, n0), (t1, n1) in zip(samples, samples[1:]):
        for m in marks:
            if n0 < m <= n1 and m not in out:
                out[m] = (n1 - n0) / (t1 - t0)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=110000)
    parser.add_argument("--rate", type=float, default=6000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lbapp-ovs-scale-"))
    marks = [m for m in (1000, 5000, 10000, 20000, 30000, 40000, 60000, 100000) if m <= args.count]
    print(f"offered {args.rate:.0f} new connections/s, {args.count} in all; flows installed per second")
    modes = {"bundles": (256, BUNDLE_MIN_DEFAULT), "burst 256": (256, 0), "burst 1": (1, 0)}
    runs = {mode: run(args.count, args.rate, burst, bundle_min, work, f"lbs{i}")
            for i, (mode, (burst, bundle_min)) in enumerate(modes.items())}
    rates = {mode: rates_at(samples, marks) for mode, samples in runs.items()}
    print(f"{'session flows':>14}" + "".join(f"{mode:>11}" for mode in modes))
    for m in marks:
        print(f"{m:>14}" + "".join(f"{rates[mode].get(m, float('nan')):>11.0f}" for mode in modes))
    for mode, samples in runs.items():
        print(f"{mode}: {samples[-1][1]} of {args.count} connections got a session flow "
              f"in {samples[-1][0] - samples[0][0]:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
