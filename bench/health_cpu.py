"""Controller CPU for health checks: N backends (1,000 by default) each probed every second, the
fake switch acting as the network (the gateway answers ARP, every backend answers a probe's SYN
with a SYN/ACK, the controller resets it), against the same controller and backends without
health checks, in alternating runs.

    python bench/health_cpu.py [--backends 1000] [--interval 1] [--seconds 15] [--runs 3]

CPU is the controller process's user+system time (/proc/PID/stat) over the measured window.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

from ofswitch import FakeSwitch  # noqa: E402
from setup_rate import DPID, free_port, lbapp_command, wait_listening  # noqa: E402

from lbapp.pipeline import cookies  # noqa: E402


def config(path: Path, backends: int, interval: float | None) -> Path:
    doc = yaml.safe_load((ROOT / "topologies" / "worked_example.yaml").read_text())
    ips = [f"10.11.{12 + i // 250}.{i % 250 + 1}" for i in range(backends)]
    doc["routes"] = [{"dst": "10.11.0.0/16", "via": "router"}]
    doc["vips"][0]["backends"] = [{"ip": ip} for ip in ips]
    doc["edges"][0]["backends"] = ips
    if interval is not None:
        doc["vips"][0]["health"] = {"type": "tcp", "interval": interval, "timeout": interval / 2}
    path.write_text(yaml.safe_dump(doc))
    return path


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def measure(cfg: Path, seconds: float) -> tuple[float, float]:
    """(controller CPU in % of one core, probes answered per second) over ``seconds``."""
    port = free_port()
    proc = subprocess.Popen(lbapp_command(cfg, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        wait_listening(port, proc)
        switch = FakeSwitch("127.0.0.1", port, DPID, cookies.make(cookies.STAGE_SESSION, vip=1))
        # the network answers from the start: the gateway's ARP reply to the first probe
        switch.answer_probes("10.0.0.1", bytes.fromhex("aabbccddeeff"),
                             cookies.make(cookies.STAGE_CLASSIFY, obj=1), cookies.make(cookies.STAGE_PROBE))
        try:
            switch.handshake(settle=3.0)  # the pipeline goes in, the gateway is learned, probing starts: warm
            cpu0, probes0, t0 = cpu_seconds(proc.pid), switch.probes_answered, time.monotonic()
            switch.handshake(settle=seconds)  # keeps answering
            elapsed = time.monotonic() - t0
            return (100 * (cpu_seconds(proc.pid) - cpu0) / elapsed, (switch.probes_answered - probes0) / elapsed)
        finally:
            switch.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backends", type=int, default=1000)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lbapp-health-"))
    checked = config(work / "checked.yaml", args.backends, args.interval)
    plain = config(work / "plain.yaml", args.backends, None)
    with_checks, without, rates = [], [], []
    for _ in range(args.runs):
        cpu, rate = measure(checked, args.seconds)
        with_checks.append(cpu)
        rates.append(rate)
        without.append(measure(plain, args.seconds)[0])
    cpu, base, rate = statistics.median(with_checks), statistics.median(without), statistics.median(rates)
    print(f"{args.backends} backends, a tcp check every {args.interval:g} s (median of {args.runs} runs of "
          f"{args.seconds:g} s)")
    print(f"probes answered/s        {rate:8.0f}")
    print(f"controller CPU, checks   {cpu:7.1f} %")
    print(f"controller CPU, none     {base:7.1f} %")
    print(f"CPU per probe            {(cpu - base) / 100 / rate * 1e6 if rate else float('nan'):7.0f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
