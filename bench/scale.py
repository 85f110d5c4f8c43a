"""Scale: setup rate and controller memory with many live sessions, setup rate with 10, 100
and 1000 backends, and Maglev table build time for many backends.

    python bench/scale.py [--sessions 1000,10000,100000] [--measure 2000]

The controller keeps every session it made (the fake switch never removes flows), so each step
first makes sessions up to the next size, then measures the setup rate there (the median of
three chunks of ``--measure`` / 3 setups, which add to the count), and the controller's
resident memory per session (from /proc).
"""
from __future__ import annotations

import argparse
import statistics
import ipaddress
import sys
import tempfile
import time
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

from setup_rate import config_for, connected, free_port, lbapp_command  # noqa: E402

from lbapp.schedulers.base import BackendWeight  # noqa: E402
from lbapp.schedulers.mh import build_table  # noqa: E402


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def median_rate(switch, setups: int, chunks: int = 3) -> tuple[float, int]:
    """The median setup rate of ``chunks`` runs of ``setups`` / ``chunks``, and how many were made."""
    runs = [switch.run(30, 64, limit=max(1, setups // chunks)) for _ in range(chunks)]
    return statistics.median(r.rate for r in runs), sum(r.completed for r in runs)


def backends_rate(n: int, scheduler: str, measure: int) -> float:
    """Setup rate for one VIP with ``n`` backends (10.11.0.0/16 behind one route)."""
    doc = yaml.safe_load((ROOT / "topologies" / "worked_example.yaml").read_text())
    ips = [str(ipaddress.IPv4Address(int(ipaddress.IPv4Address("10.11.0.10")) + i)) for i in range(n)]
    doc["routes"] = [{"dst": "10.11.0.0/16", "via": "router"}]
    doc["vips"][0].update(scheduler=scheduler, backends=[{"ip": ip} for ip in ips])
    doc["edges"][0]["backends"] = ips
    path = Path(tempfile.mkdtemp()) / f"{scheduler}-{n}.yaml"
    path.write_text(yaml.safe_dump(doc))
    port = free_port()
    with connected(lbapp_command(path, port), port) as (_, switch):
        switch.run(30, 64, limit=500)  # warm-up
        return median_rate(switch, measure)[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", default="1000,10000,100000")
    parser.add_argument("--measure", type=int, default=2000, help="setups timed at each size")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sessions.split(",")]

    port = free_port()
    cfg = config_for("rr", Path(tempfile.mkdtemp()) / "rr.yaml")
    with connected(lbapp_command(cfg, port), port) as (proc, switch):
        base = rss_kib(proc.pid)
        made = 0
        rows = []
        print(f"{'live sessions':>14}{'setups/s':>10}{'x at first':>11}{'KiB/session':>12}")
        for size in sizes:
            while made < size:  # fill up to this size
                made += switch.run(30, 64, limit=size - made).completed
            rate, completed = median_rate(switch, args.measure)
            made += completed
            per_session = (rss_kib(proc.pid) - base) / made
            rows.append((size, rate, per_session))
            print(f"{size:>14}{rate:>10.0f}{rate / rows[0][1]:>11.2f}{per_session:>12.2f}")

    print(f"\n{'backends':>9}{'scheduler':>10}{'setups/s':>10}{'x at 10':>9}")
    first: dict[str, float] = {}
    for n in (10, 100, 1000):
        for scheduler in ("rr", "wlc", "mh"):
            rate = backends_rate(n, scheduler, args.measure)
            first.setdefault(scheduler, rate)
            print(f"{n:>9}{scheduler:>10}{rate:>10.0f}{rate / first[scheduler]:>9.2f}")

    print(f"\n{'backends':>9}{'Maglev M':>10}{'build s':>9}")
    for n in (10, 100, 1000):
        backends = [BackendWeight(ipaddress.IPv4Address(0x0A000000 + i), 1) for i in range(n)]
        start = time.perf_counter()
        build_table(backends, 65537)
        print(f"{n:>9}{65537:>10}{time.perf_counter() - start:>9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
