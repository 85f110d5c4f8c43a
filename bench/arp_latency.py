"""ARP proxy latency on a real OVS bridge (userspace datapath): a host asks for a backend's MAC
with arping; the balancer answers inside the switch (arp_proxy: switch) or through the
controller (arp_proxy: controller). Side by side in one run.

    python bench/arp_latency.py [--count 200]      (root)
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from tests.helpers.net import Lab  # noqa: E402  (the OVS tier's namespaces-on-a-bridge helper)


def measure(mode: str, count: int, work: Path) -> list[float]:
    doc = yaml.safe_load((ROOT / "topologies" / "worked_example.yaml").read_text())
    doc["balancer"]["arp_proxy"] = mode
    cfg = work / f"{mode}.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    lab = Lab(f"lbb{mode[0]}", work)
    try:
        br = lab.bridge("br", 1)
        host = lab.host(br, "h", 1, "10.0.0.10/24", "02:00:00:00:00:10")
        lab.controller(cfg, br)
        out = lab.ns(host, "arping", "-c", str(count), "-W", "0.01", "-w", str(10 + count // 10),
                     "-I", lab.iface(host), "10.11.12.13", check=False, timeout=120)
        times = []
        for value, unit in re.findall(r"time=([\d.]+) (usec|msec)", out):
            times.append(float(value) * (1000 if unit == "msec" else 1))
        if len(times) < count * 0.9:
            raise RuntimeError(f"{mode}: only {len(times)} of {count} answers:\n{out[-500:]}")
        return times
    finally:
        lab.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lbapp-arp-"))
    results = {mode: measure(mode, args.count, work) for mode in ("switch", "controller")}
    print(f"{'answered by':<12}{'p50 us':>9}{'p99 us':>9}{'answers':>9}")
    for mode, times in results.items():
        ordered = sorted(times)
        print(f"{mode:<12}{statistics.median(ordered):>9.0f}{ordered[int(0.99 * (len(ordered) - 1))]:>9.0f}"
              f"{len(ordered):>9}")
    ratio = statistics.median(results["controller"]) / statistics.median(results["switch"])
    print(f"controller / switch (p50): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
