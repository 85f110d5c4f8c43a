"""Thousands of VIPs (#27): how long a config of N VIPs of M backends takes to read and check
(lbapp.config.load_config: the YAML, pydantic, the whole-file rules), and how fast hostile files
are still refused. Configs are generated on the cross_vlan shape (wlc VIPs, one route, one edge).

    python bench/config_scale.py [--vips 1000,10000] [--backends 10] [--runs 3] [--lbapp DIR]

``--lbapp DIR``: measure the lbapp in DIR instead (a checkout of an earlier commit: before/after).
Prints one line per size and per hostile file."""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def generate(vips: int, backends: int) -> str:
    """A valid config: VIP i at 117.78.x.y:80 with backends 10.11.x.y, all behind one route and one edge."""
    def backend(n: int) -> str:
        return f"10.{11 + n // 65536}.{n // 256 % 256}.{n % 256}"
    lines = ["balancer: {name: lb, dpid: 1, address: 10.0.0.2/24, mac: '02:00:00:00:00:02'}",
             "gateways: [{name: r0, ip: 10.0.0.1}]",
             "routes: [{dst: 10.8.0.0/13, via: r0}]",
             "vips:"]
    n = 0
    for i in range(vips):
        lines.append(f"  - name: vip{i}")
        lines.append(f"    ip: 117.{78 + i // 65536}.{i // 256 % 256}.{i % 256}")
        lines += ["    port: 80", "    scheduler: wlc", "    backends:"]
        for _ in range(backends):
            lines.append(f"      - {{ip: {backend(n + 256)}}}")
            n += 1
    lines.append("edges:")
    lines.append("  - name: edge")
    lines.append("    dpid: 2")
    lines.append("    backends:")
    lines += [f"      - {backend(k + 256)}" for k in range(n)]
    return "\n".join(lines) + "\n"


def hostile() -> dict[str, str]:
    return {"750,001 YAML nodes": "vips: [" + "1," * 750_001 + "1]\n",
            "33 levels of nesting": "vips: " + "[" * 33 + "]" * 33 + "\n",
            "an alias bomb": "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
                f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
                for p, c in zip("abcdefgh", "bcdefghi")),
            "17 MiB of comments": "#" * (17 << 20) + "\n"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vips", default="1000,10000")
    parser.add_argument("--backends", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lbapp", help="a directory holding the lbapp package to measure")
    args = parser.parse_args()
    sys.path.insert(0, args.lbapp or str(ROOT))
    from lbapp.config import ConfigError, load_config

    tmp = Path(tempfile.mkdtemp(prefix="lbapp-config-scale-"))
    print(f"lbapp from {args.lbapp or ROOT}")
    for vips in (int(v) for v in args.vips.split(",")):
        path = tmp / f"{vips}.yaml"
        path.write_text(generate(vips, args.backends))
        times, outcome = [], ""
        for _ in range(args.runs):
            started = time.perf_counter()
            try:
                cfg = load_config(path)
                outcome = f"accepted: {len(cfg.vips)} VIPs"
            except ConfigError as exc:
                outcome = f"refused: {str(exc.errors[0])[:80]}"
            times.append(time.perf_counter() - started)
        print(f"{vips:>6} VIPs x {args.backends} backends, {path.stat().st_size / 1e6:.2f} MB: load_config "
              f"{statistics.median(times):.2f} s (median of {args.runs}), {outcome}")
    for name, text in hostile().items():
        path = tmp / "hostile.yaml"
        path.write_text(text)
        started = time.perf_counter()
        try:
            load_config(path)
            outcome = "accepted"
        except ConfigError as exc:
            outcome = f"refused: {str(exc.errors[0])[:90]}"
        print(f"{name}: {time.perf_counter() - started:.2f} s, {outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
