"""Controller connection-setup rate and first-packet latency: lbapp (each scheduler) against a
null os-ken app that answers each packet-in with one pre-built message, measured side by side
in one run by the fake switch in ofswitch.py.

Rate: setups per second with ``window`` packet-ins outstanding. Latency: packet-in to the
packet-out that re-injects the packet, one setup at a time (under a full window the latency is
just window / rate, queueing, and says nothing more).

    python bench/setup_rate.py [--seconds 3] [--runs 3] [--window 64] [--schedulers rr,wrr,...]
                               [--pins flow,conntrack] [--persistence]

``--persistence``: each lbapp target also with ``persistence: {timeout: 300}`` beside it (the
fake switch's connections all come from one client: every pick after the first is the
client's remembered backend, and each setup also writes the client's entry).

Prints a table (median of the runs) and writes bench/results/setup_rate.json.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
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

from ofswitch import FakeSwitch, Result  # noqa: E402

from lbapp.pipeline import cookies  # noqa: E402
from lbapp.schedulers import registry  # noqa: E402

DPID = 1
# Latency is measured in chunks of setups alternating between lbapp and a null app; the first
# few of a chunk find a controller that has just sat idle (cold caches) and are not counted.
LATENCY_CHUNK, LATENCY_WARM = 200, 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"controller exited ({proc.returncode})")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("controller did not listen")


def config_for(scheduler: str, path: Path, pin: str = "flow", persistence: bool = False, vips: int = 1) -> Path:
    """The worked example's VIP (the one the fake switch connects to) with ``scheduler``, and
    ``vips - 1`` more of 10 backends each (10.12.0.0/14, one more route), which only take room."""
    doc = yaml.safe_load((ROOT / "topologies" / "worked_example.yaml").read_text())
    doc["vips"][0].update(scheduler=scheduler, pin=pin, **({"persistence": {"timeout": 300}} if persistence else {}))
    if vips > 1:
        doc["routes"].append({"dst": "10.12.0.0/14", "via": "router"})
        for i in range(1, vips):
            doc["vips"].append({"name": f"more{i}", "ip": f"117.{79 + i // 65536}.{i // 256 % 256}.{i % 256}",
                                "port": 80, "scheduler": scheduler,
                                "backends": [{"ip": f"10.{12 + k // 65536}.{k // 256 % 256}.{k % 256}"}
                                             for k in range(i * 10, i * 10 + 10)]})
        doc["edges"][0]["backends"] += sorted({b["ip"] for v in doc["vips"][1:] for b in v["backends"]})
    path.write_text(yaml.safe_dump(doc))
    return path


def null_command(port: int) -> list[str]:
    return [sys.executable, str(BENCH / "serve_null.py"), str(port)]


def lbapp_command(config: Path, port: int, api_port: int = 0) -> list[str]:
    return [sys.executable, "-m", "lbapp.cli.main", "run", "-c", str(config), "--listen", "127.0.0.1",
            "--port", str(port), "--api-port", str(api_port)]


@contextlib.contextmanager
def connected(cmd: list[str], port: int, settle: float = 1.0, quiet: float | None = None):
    """A controller started from ``cmd`` and a fake switch through its handshake (ofswitch.py's
    ``settle`` and ``quiet``): (process, switch)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        wait_listening(port, proc)
        switch = FakeSwitch("127.0.0.1", port, DPID, cookies.make(cookies.STAGE_SESSION, vip=1))
        switch.handshake(settle=settle, quiet=quiet)
        try:
            yield proc, switch
        finally:
            switch.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def measure(cmd: list[str], port: int, seconds: float, window: int, settle: float = 1.0,
            quiet: float | None = None) -> dict:
    """Rate with a full window; then first-packet latency one setup at a time, paired with a null
    app running beside it: chunks of setups alternate between the two, so a burst of noise on
    this shared machine lands on both rather than on whichever ran at the time."""
    null_port = free_port()
    with connected(cmd, port, settle, quiet) as (_, switch), \
            connected(null_command(null_port), null_port) as (_, reference):
        switch.run(0.5, window)  # warm-up
        loaded = switch.run(seconds, window)  # throughput: a window of outstanding setups
        mine, theirs = [], []
        deadline = time.monotonic() + min(seconds, 2.0) * 2
        while time.monotonic() < deadline:  # latency: one setup at a time, no queueing
            mine += switch.run(1.0, 1, limit=LATENCY_CHUNK).latencies_us[LATENCY_WARM:]
            theirs += reference.run(1.0, 1, limit=LATENCY_CHUNK).latencies_us[LATENCY_WARM:]
    alone, paired = Result(len(mine), 0, 0, mine), Result(len(theirs), 0, 0, theirs)
    return {"rate": loaded.rate, "p50_us": alone.percentile(50), "p99_us": alone.percentile(99),
            "null_p50_us": paired.percentile(50), "null_p99_us": paired.percentile(99),
            "p99_ratio": alone.percentile(99) / paired.percentile(99),
            "loaded_p99_us": loaded.percentile(99), "flow_mods": loaded.flow_mods, "completed": loaded.completed}


def median_of(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--schedulers", default=",".join(registry.names()))
    parser.add_argument("--pins", default="flow", help="flow, conntrack or both (flow,conntrack): the VIP's pin")
    parser.add_argument("--persistence", action="store_true", help="each lbapp target with persistence too")
    parser.add_argument("--out", default=str(BENCH / "results" / "setup_rate.json"))
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="lbapp-bench-"))
    targets = [("null app", null_command)]
    for pin in args.pins.split(","):
        for name in args.schedulers.split(","):
            for persistent in (False, True) if args.persistence else (False,):
                cfg = config_for(name, tmp / f"{name}-{pin}-{persistent}.yaml", pin, persistent)
                label = f"lbapp {name}" + (" ct" if pin == "conntrack" else "") + (" persist" if persistent else "")
                targets.append((label, lambda port, cfg=cfg: lbapp_command(cfg, port)))
    results = {name: [] for name, _ in targets}
    for _ in range(args.runs):  # interleaved, so drift on a shared machine hits every target alike
        for name, cmd in targets:
            port = free_port()
            results[name].append(measure(cmd(port), port, args.seconds, args.window))
    summary = {name: median_of(runs) for name, runs in results.items()}
    ref = summary["null app"]
    print(f"{'target':<22}{'setups/s':>10}{'x null':>8}{'p50 us':>9}{'p99 us':>9}{'null p99':>10}{'p99 x null':>11}")
    for name, r in summary.items():
        r["rate_ratio"] = r["rate"] / ref["rate"]
        print(f"{name:<22}{r['rate']:>10.0f}{r['rate_ratio']:>8.2f}{r['p50_us']:>9.0f}{r['p99_us']:>9.0f}"
              f"{r['null_p99_us']:>10.0f}{r['p99_ratio']:>11.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, "
               f"{platform.python_implementation()} {platform.python_version()}")
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "machine": machine,
                               "seconds": args.seconds, "runs": args.runs, "window": args.window,
                               "summary": summary, "runs_raw": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
