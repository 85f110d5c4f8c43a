"""Thousands of VIPs (#27), the controller's side, in one process (no switch): for N VIPs of M
backends (config_scale.py's configs, one balancer and one edge switch), how long

- a balancer and an edge switch take to get their pipelines (``switch_connected``: building the
  messages, then serialising them as os-ken's ``send_msg`` would), and how many messages;
- a reload that changes one VIP's scheduler takes, and how many messages it sends;
- a ``/metrics`` scrape takes (the first, another with nothing changed, another with 1% of the
  VIPs changed), and ``GET /v1/state`` (the snapshot, then the JSON);

and how much memory the controller holds per VIP and per backend (tracemalloc, after loading
the config and connecting both switches, less an empty controller's).

    python bench/vip_scale.py [--vips 1000,10000] [--backends 10] [--lbapp DIR]

``--lbapp DIR``: measure the lbapp in DIR instead (a checkout of an earlier commit: before/after)."""
from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

BALANCER, EDGE = 1, 2


class FakeDatapath:
    """What os-ken's serialiser asks of a datapath: its protocol modules and xids."""

    def __init__(self) -> None:
        from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser
        self.ofproto, self.ofproto_parser, self.xid = ofproto_v1_3, ofproto_v1_3_parser, 0

    def set_xid(self, msg) -> None:  # noqa: ANN001
        self.xid += 1
        msg.set_xid(self.xid)


def serialised(out: list) -> int:
    """Bytes of ``out``'s messages, serialised as the sender would."""
    dp, total = FakeDatapath(), 0
    for _, msg in out:
        if hasattr(msg, "buf") and not hasattr(msg, "serialize"):  # a pre-serialised RawMessage
            total += len(msg.buf)
            continue
        msg.datapath = dp
        if msg.xid is None:
            dp.set_xid(msg)
        msg.serialize()
        total += len(msg.buf)
    return total


def timed(fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started


def memory(path: Path) -> int:
    """Bytes the controller holds after loading ``path`` and connecting both switches (a pass of
    its own: tracemalloc slows what it traces)."""
    from lbapp.config import load_config
    from lbapp.service import Balancer
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    lb = Balancer(load_config(path))
    for dpid in (BALANCER, EDGE):
        lb.switch_connected(dpid, 0.0)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del lb
    return held


def metrics_scrapes(lb, row: dict) -> None:  # noqa: ANN001
    """/metrics: the first scrape, another with nothing changed, one after a connection to each
    of 1% of the VIPs (each page of readings read as the API reads it, less the lock)."""
    vips = list(lb.running.vips)
    for vip in vips:  # every backend has carried connections and traffic: each lookup finds an entry
        for n, state in enumerate(lb.running.backends.of_vip(vip.id)):
            lb.sessions.total[(vip.id, state.ip)] += 1
            lb.readings.traffic.session_ended(("bench", vip.id, n), (vip.id, state.ip), 1500, 3)
    try:
        from lbapp.metrics import Scraper
        from lbapp.snapshot import backend_readings
    except ImportError:  # before #27's scraper: the library wrote every sample from the snapshot
        from lbapp.metrics import generate_latest, paged, registry_for
        registry = registry_for(paged(lambda **page: lb.snapshot(2.0, **page)))
        text, row["metrics_s"] = timed(generate_latest, registry)
        row["metrics_bytes"], row["metrics_again_s"], row["metrics_changed_s"] = len(text), None, None
        return
    scraper = Scraper(lambda **page: backend_readings(lb, **page), lambda **page: lb.snapshot(2.0, **page))
    text, row["metrics_s"] = timed(scraper.scrape)
    row["metrics_bytes"] = sum(map(len, text))
    _, row["metrics_again_s"] = timed(scraper.scrape)
    for vip in vips[::100]:
        lb.sessions.total[(vip.id, lb.running.backends.of_vip(vip.id)[0].ip)] += 1
    _, row["metrics_changed_s"] = timed(scraper.scrape)


def status_table(snapshot: dict) -> float:
    """Seconds ``lbapp status`` takes to lay out its table for ``snapshot`` (no terminal)."""
    import io

    from rich.console import Console

    from lbapp.cli.status import render
    console = Console(file=io.StringIO(), width=160)
    return timed(lambda: console.print(render(snapshot)))[1]


def measure(vips: int, backends: int, tmp: Path) -> dict:
    from config_scale import generate
    from lbapp.config import load_config
    from lbapp.service import Balancer
    row: dict = {"vips": vips, "backends": backends}
    path = tmp / f"{vips}.yaml"
    path.write_text(generate(vips, backends))
    row["memory_bytes"] = memory(path)
    cfg, row["load_s"] = timed(load_config, path)
    lb, row["start_s"] = timed(Balancer, cfg)
    for name, dpid in (("balancer", BALANCER), ("edge", EDGE)):
        out, row[f"{name}_build_s"] = timed(lb.switch_connected, dpid, 0.0)
        size, row[f"{name}_serialise_s"] = timed(serialised, out)
        row[f"{name}_messages"], row[f"{name}_bytes"] = len(out), size
        del out
    text = path.read_text().replace("    scheduler: wlc", "    scheduler: rr", 1)  # vip0's scheduler
    path.write_text(text)
    changed = load_config(path)
    out, row["reload_build_s"] = timed(lb.reconfigure, changed, 1.0)
    _, row["reload_serialise_s"] = timed(serialised, out)
    row["reload_messages"] = len(out)
    snapshot, row["snapshot_s"] = timed(lb.snapshot, 2.0)
    metrics_scrapes(lb, row)
    body, row["state_json_s"] = timed(json.dumps, snapshot)
    row["status_s"] = status_table(snapshot)
    row["state_bytes"] = len(body)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vips", default="1000,10000")
    parser.add_argument("--backends", type=int, default=10)
    parser.add_argument("--lbapp", help="a directory holding the lbapp package to measure")
    args = parser.parse_args()
    sys.path.insert(0, args.lbapp or str(ROOT))
    sys.path.insert(1, str(BENCH))
    tmp = Path(tempfile.mkdtemp(prefix="lbapp-vip-scale-"))
    print(f"lbapp from {args.lbapp or ROOT}")
    rows = [measure(int(v), args.backends, tmp) for v in args.vips.split(",")]
    for r in rows:
        print(f"{r['vips']:>6} VIPs x {r['backends']}: load {r['load_s']:.2f} s, start {r['start_s']:.2f} s; "
              f"balancer {r['balancer_messages']} messages built {r['balancer_build_s']:.2f} s + serialised "
              f"{r['balancer_serialise_s']:.2f} s ({r['balancer_bytes'] / 1e6:.1f} MB); edge {r['edge_messages']} "
              f"messages {r['edge_build_s']:.2f} + {r['edge_serialise_s']:.2f} s ({r['edge_bytes'] / 1e6:.1f} MB)")
        print(f"        reload of one VIP's scheduler: {r['reload_messages']} messages, built {r['reload_build_s']:.2f} s"
              f" + serialised {r['reload_serialise_s']:.2f} s; snapshot {r['snapshot_s']:.2f} s, /v1/state JSON "
              f"{r['state_json_s']:.2f} s ({r['state_bytes'] / 1e6:.1f} MB); lbapp status's table {r['status_s']:.2f} s")
        again = "" if r["metrics_again_s"] is None else (
            f"; again, nothing changed {r['metrics_again_s']:.2f} s; again, 1% of VIPs changed "
            f"{r['metrics_changed_s']:.2f} s")
        print(f"        /metrics: first scrape {r['metrics_s']:.2f} s ({r['metrics_bytes'] / 1e6:.1f} MB){again}")
        print(f"        memory after load and both switches: {r['memory_bytes'] / 1e6:.0f} MB "
              f"({r['memory_bytes'] / r['vips']:.0f} B per VIP, {r['memory_bytes'] / (r['vips'] * r['backends']):.0f} B"
              " per backend)")
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        per_vip = (b["memory_bytes"] - a["memory_bytes"]) / (b["vips"] - a["vips"])
        print(f"memory per added VIP of {b['backends']} backends: {per_vip:.0f} B "
              f"({per_vip / b['backends']:.0f} B per backend)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
