"""A spoofed-source SYN flood against a VIP the controller picks for, on Mininet (cross_vlan,
real OVS userspace datapath): hping3 --faster --rand-source from h1 at the `stream` VIP while
legitimate clients on h1 open connections to it at a steady pace; the share of legitimate
connections answered within 3 s (one SYN retransmission allowed), with lbapp's defences (the
punt meter, the overload hand-over to the switch's own path) and without them (punt_limit
1,000,000, overload_above 0), alternating in one lab through reloads. Also: the controller's
memory (RSS) and whether its API answered during the flood.

    python bench/synflood.py [--seconds 10] [--rate 20] [--runs 2]     (root)
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from lbapp import apitoken, ctzone  # noqa: E402
from lbapp.lab import SYSTEM_PYTHON, TOPOLOGIES, MininetLab, wait_for  # noqa: E402

CLIENT = TOPOLOGIES / "services" / "paced_client.py"
VIP, PORT = "117.78.6.19", 7000  # cross_vlan's `stream`: rr, selection: controller
TIMEOUT_S = 3.0
MODES = {"undefended": {"punt_limit": 1_000_000, "overload_above": 0},
         "defended": {}, "tight": {"punt_limit": 1000, "overload_above": 500}}  # defended: lbapp's defaults


def write_config(path: Path, mode: str) -> None:
    doc = yaml.safe_load((TOPOLOGIES / "cross_vlan.yaml").read_text())
    doc["balancer"].update(MODES[mode])
    path.write_text(yaml.safe_dump(doc))


def api(lab, path: str, body: dict | None = None, timeout: float = 5.0):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(lab.api_url + path, data=data, method="POST" if data else "GET",
                                 headers={"Content-Type": "application/json",
                                          "Authorization": f"Bearer {apitoken.read(lab.api_token_file)}"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status)[1]) / 1024


def one_run(lab, mode: str, config: Path, seconds: float, rate: float) -> dict:
    write_config(config, mode)
    api(lab, "/v1/reload", {})
    # a clean start: the run before's sessions idled out, its overload over, its pins gone
    wait_for(lambda: api(lab, "/v1/state")["sessions"] == 0 and not any(
        v["overloaded"] for v in api(lab, "/v1/state")["vips"]), 90, "the last run's sessions to idle out")
    ctzone.flush()
    h1 = lab.net.get("h1")
    flood = h1.popen(["timeout", str(seconds + 1), "hping3", "--faster", "-S", "-p", str(PORT), "--rand-source", "-q",
                      VIP], stderr=__import__("subprocess").PIPE, text=True)
    api_ok, api_slow, peak = [0], [0], [rss_mib(lab.controller.pid)]

    def watch():  # the API stays responsive, and memory bounded, during the flood
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.monotonic()
            try:
                api(lab, "/v1/state", timeout=2.0)
                api_ok[0] += 1
                api_slow[0] = max(api_slow[0], time.monotonic() - started)
            except OSError:
                pass
            peak[0] = max(peak[0], rss_mib(lab.controller.pid))
            time.sleep(0.5)

    watcher = threading.Thread(target=watch)
    time.sleep(1.0)  # the flood is on
    watcher.start()
    out = h1.cmd(f"{SYSTEM_PYTHON} {CLIENT} {VIP} {PORT} {rate} {seconds - 2} {TIMEOUT_S}").split()
    watcher.join()
    _, err = flood.communicate(timeout=30)
    sent = re.search(r"(\d+) packets transmitted", err or "")
    started, ok, failed = int(out[0]), int(out[1]), int(out[2])
    state = api(lab, "/v1/state")
    return {"mode": mode, "legit": started, "ok": ok, "failed": failed, "share": ok / started if started else 0.0,
            "p50_ms": float(out[3]), "p99_ms": float(out[4]), "flood_syns": int(sent[1]) if sent else -1,
            "api_answers": api_ok[0], "api_slowest_s": round(api_slow[0], 2), "rss_peak_mib": round(peak[0], 1),
            "sessions_after": state["sessions"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=20.0, help="legitimate new connections per second")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--modes", default=",".join(MODES), help=f"which of {', '.join(MODES)}")
    args = parser.parse_args()
    modes = args.modes.split(",")
    work = Path(tempfile.mkdtemp(prefix="lbapp-synflood-"))
    config = work / "lb.yaml"
    write_config(config, "defended")
    rows = []
    with MininetLab("cross_vlan", work, config, debug=False) as lab:
        wait_for(lambda: lab.ask("h1", next(v for v in lab.cfg.vips if v.port == PORT)), 20, "the VIP to answer")
        for _ in range(args.runs):
            for mode in modes:  # alternating, side by side
                rows.append(one_run(lab, mode, config, args.seconds, args.rate))
                print(rows[-1], flush=True)
    print(f"{'mode':<12}{'legit ok':>12}{'share':>8}{'p50 ms':>9}{'p99 ms':>9}{'flood SYNs':>12}"
          f"{'API ok':>8}{'API max s':>10}{'RSS MiB':>9}")
    for r in rows:
        print(f"{r['mode']:<12}{r['ok']:>6}/{r['legit']:<5}{r['share']:>8.1%}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
              f"{r['flood_syns']:>12}{r['api_answers']:>8}{r['api_slowest_s']:>10}{r['rss_peak_mib']:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
