"""`lbapp flows -f` on big dumps: the time to explain a saved ``ovs-ofctl dump-flows`` of a
balancer with many live sessions, as a table (to /dev/null) and as JSON.

    python bench/flows_explain.py [--sessions 10000,100000] [--runs 3] [--before DIR]

The dumps are made here: the static flows of a real cross_vlan balancer dump
(tests/data/cross_vlan_s1.flows) plus N session flows in the shape OVS prints them (the session
stage's cookie, priority and match, the VIP's idle timeout, the backend's fabricated MAC), each
a distinct client address and port. ``--before DIR`` also times the lbapp package found in DIR
(a copy of an older tree), alternating with this one, and says whether the outputs are the same.

Importable: :func:`dump` and :func:`session_line` make dumps for tests.
"""
from __future__ import annotations

import argparse
import hashlib
import ipaddress
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from lbapp.config import load_config  # noqa: E402
from lbapp.pipeline import cookies  # noqa: E402
from lbapp.pipeline.context import Context  # noqa: E402

DATA = ROOT / "tests" / "data"
CONFIG = DATA / "cross_vlan.yaml"
STATIC = DATA / "cross_vlan_s1.flows"
SESSION_TABLE = 20
NEXT_TABLE = 30


def _vips() -> list[tuple[int, object, list[int]]]:
    """(VIP id, VIP, its backends' fabricated MACs) for each VIP the balancer schedules."""
    ctx = Context(load_config(CONFIG))
    return [(vip_id, vip, [ctx.scheme.encode(b.ip) for b in vip.backends]) for vip_id, vip in ctx.balanced_vips()]


def _mac(value: int) -> str:
    return ":".join(f"{(value >> shift) & 0xFF:02x}" for shift in range(40, -8, -8))


def session_line(session_id: int, vip_id: int, vip, mac: int, rng: random.Random, of10: bool = False) -> str:
    """One session flow as ``ovs-ofctl dump-flows`` prints it: OpenFlow 1.3 (flags, no idle_age,
    set_field) or OpenFlow 1.0 with Nicira stats (idle_age, no flags, mod_dl_dst)."""
    client = ipaddress.IPv4Address(0xC8010001 + session_id // 50000)  # 200.1.x.y, 50k ports each
    port = 1024 + session_id % 50000
    packets = rng.randint(1, 5000)
    info = (f"cookie={cookies.make(cookies.STAGE_SESSION, vip=vip_id, obj=session_id):#x}, "
            f"duration={rng.uniform(0, vip.idle_timeout * 50):.3f}s, table={SESSION_TABLE}, "
            f"n_packets={packets}, n_bytes={packets * rng.randint(60, 1500)}, idle_timeout={vip.idle_timeout}, ")
    match = (f"priority=100,{vip.protocol},nw_src={client},nw_dst={vip.ip},tp_src={port},tp_dst={vip.port}")
    if of10:
        return (f" {info}idle_age={rng.randint(0, vip.idle_timeout)}, {match} "
                f"actions=mod_dl_dst:{_mac(mac)},resubmit(,{NEXT_TABLE})")
    return f" {info}send_flow_rem {match} actions=set_field:{_mac(mac)}->eth_dst,goto_table:{NEXT_TABLE}"


def static_lines() -> list[str]:
    """The real dump without its per-connection flows (session stage, generation 0, an object)."""
    out = []
    for line in STATIC.read_text().splitlines():
        cookie = line.split("cookie=")[1].split(",")[0] if "cookie=" in line else ""
        c = cookies.decode(int(cookie, 16)) if cookie else None
        if not (c and c.stage == cookies.STAGE_SESSION and c.generation == 0 and c.obj):
            out.append(line)
    return out


def session_lines(sessions: int, seed: int = 0, of10: bool = False) -> list[str]:
    """``sessions`` session flows spread over the balanced VIPs and their backends."""
    rng, vips = random.Random(seed), _vips()
    lines = []
    for session_id in range(1, sessions + 1):
        vip_id, vip, macs = vips[session_id % len(vips)]
        lines.append(session_line(session_id, vip_id, vip, rng.choice(macs), rng, of10))
    return lines


def dump(sessions: int, seed: int = 0, of10: bool = False) -> str:
    """A whole dump: the static flows with ``sessions`` session flows where OVS lists them, first
    in the session table (priority 100, above its static flows)."""
    static = static_lines()
    at = next(i for i, line in enumerate(static) if f" table={SESSION_TABLE}," in line)
    return "\n".join(static[:at] + session_lines(sessions, seed, of10) + static[at:]) + "\n"


def run_cli(dump_path: Path, as_json: bool, pythonpath: str | None) -> tuple[float, str]:
    """Seconds for ``lbapp flows -f DUMP -c cross_vlan.yaml`` end to end, and its output's digest."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    args = [sys.executable, "-m", "lbapp.cli.main", "flows", "-f", str(dump_path), "-c", str(CONFIG)]
    # run outside the tree, so PYTHONPATH (an older copy) comes before the installed lbapp
    out_path = dump_path.with_suffix(".out")
    with out_path.open("wb") as out:  # a file, not a pipe: what a redirect to /dev/null or a file gets
        start = time.perf_counter()
        subprocess.run(args + (["--json"] if as_json else []), stdout=out, cwd=dump_path.parent, env=env, check=True)
        seconds = time.perf_counter() - start
    return seconds, hashlib.sha256(out_path.read_bytes()).hexdigest()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", default="10000,100000", help="comma-separated session counts")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--before", help="a directory holding an older lbapp package, timed alongside")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lbapp-flows-"))
    targets = {"now": str(ROOT)} | ({"before": str(Path(args.before).resolve())} if args.before else {})
    print(f"lbapp flows -f DUMP -c cross_vlan.yaml, median of {args.runs} runs, seconds end to end")
    print(f"{'sessions':>9} {'output':<7}" + "".join(f"{name:>9}" for name in targets)
          + ("  same output" if args.before else ""))
    for n in (int(s) for s in args.sessions.split(",")):
        path = tmp / f"sessions-{n}.flows"
        path.write_text(dump(n))
        for as_json in (False, True):
            times: dict[str, list[float]] = {name: [] for name in targets}
            digests: dict[str, set[str]] = {name: set() for name in targets}
            for _ in range(args.runs):
                for name, where in targets.items():
                    seconds, digest = run_cli(path, as_json, where)
                    times[name].append(seconds)
                    digests[name].add(digest)
            same = "  yes" if len(set.union(*digests.values())) == 1 else "  NO"
            print(f"{n:>9} {'json' if as_json else 'table':<7}"
                  + "".join(f"{statistics.median(t):>9.2f}" for t in times.values()) + (same if args.before else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
