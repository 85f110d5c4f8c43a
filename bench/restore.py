"""How long a switch that lost its session table waits for its connections' flows to come back.

COUNT connections get a session flow each (SYNs from a namespace at RATE/s through a real bridge,
userspace datapath, `lbapp run` as the controller). Then the switch loses them, twice:

- reconnect: `ovs-vsctl del-controller` (OVS drops the bridge's flows) and `set-controller`
  again: the controller reads the table back, finds its "kept" mark gone and restores every
  remembered session (one write, its flow-mods in one ONF bundle);
- flush: `ovs-ofctl del-flows BR table=20` while connected: each flow's flow-removed (deleted,
  not by the controller) brings it back, and the next reading finds the mark gone.

The time from the event to the session table holding COUNT flows again, read every 0.2 s.

    python bench/restore.py [--count 100000] [--rate 6000]      (root)
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from bench.ovs_scale import BALANCER_MAC, session_flows  # noqa: E402
from tests.helpers.net import PYTHON, Lab, sh, wait_for  # noqa: E402

NEXT_HOP = "aa:bb:cc:dd:ee:ff"


def back_in(br: str, count: int, limit_s: float) -> tuple[float, int]:
    """Seconds until table 20 holds ``count`` session flows again (the kept mark not counted),
    and how many it holds then (fewer if ``limit_s`` passed first)."""
    start = time.monotonic()
    while True:
        held = session_flows(br) - 1
        if held >= count or time.monotonic() - start > limit_s:
            return time.monotonic() - start, held
        time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100000)
    parser.add_argument("--rate", type=float, default=6000)
    parser.add_argument("--limit", type=float, default=120, help="seconds to wait for the flows at most")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lbapp-restore-"))
    doc = yaml.safe_load((ROOT / "topologies" / "worked_example.yaml").read_text())
    doc["vips"][0]["idle_timeout"] = 900  # nothing expires during the run
    # every connection a session flow: no punt meter drops, no hand-over to the switch's path
    doc["balancer"].update(punt_limit=1_000_000, overload_above=0)
    cfg = work / "lb.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    lab = Lab("lbr", work)
    try:
        br = lab.bridge("br", 1)
        lab.host(br, "gw", 1, "10.0.0.1/24", NEXT_HOP)
        cli = lab.host(br, "cl", 2, "10.0.0.50/24", "02:00:00:00:00:50")
        lab.controller(cfg, br)
        wait_for(lambda: NEXT_HOP in lab.dump(br, "table=40"), 20, "the next hop")
        subprocess.run(["ip", "netns", "exec", cli, PYTHON, "-m", "tests.helpers.synflood", lab.iface(cli),
                        "02:00:00:00:00:50", BALANCER_MAC, "117.78.6.19", "80", str(args.count), str(args.rate)],
                       cwd=ROOT, check=True)
        _, count = back_in(br, args.count, 30)  # the last replies may still be on their way
        print(f"{count} connections with a session flow ({args.count} offered at {args.rate:.0f}/s)")
        target = f"tcp:127.0.0.1:{lab.of_port}"
        sh("ovs-vsctl", "del-controller", br)
        wait_for(lambda: session_flows(br) == 0, 20, "OVS to drop the flows")
        sh("ovs-vsctl", "set-controller", br, target)
        took, held = back_in(br, count, args.limit)
        print(f"reconnect: {held} of {count} session flows back in {took:.1f} s")
        sh("ovs-ofctl", "-O", "OpenFlow13", "del-flows", br, "table=20")
        took, held = back_in(br, count, args.limit)
        print(f"flush: {held} of {count} session flows back in {took:.1f} s")
        log = lab.controller_log.read_text().splitlines()
        for line in log:
            if "lost its session table" in line or "took back" in line:
                print("controller:", line.split("lbapp", 1)[-1].strip())
        status = subprocess.run([PYTHON, "-m", "lbapp.cli.main", "status", "--json", "--api", lab.api_url],
                                capture_output=True, text=True, cwd=ROOT).stdout
        restored = yaml.safe_load(status).get("counters", {}).get("sessions_restored") if status else None
        print(f"sessions_restored counter: {restored}; sessions held by the controller: "
              f"{yaml.safe_load(status).get('sessions') if status else None}")
        return 0
    finally:
        lab.close()


if __name__ == "__main__":
    sys.exit(main())
