"""``lbapp status [--json] [--rate] [--watch SECONDS] [--vip NAME] [--all]``: the running
balancer, per VIP and backend, ipvsadm-style, from the controller's API. The state is read a page
of VIPs per request; past ROWS_SHOWN backends the table has one row per VIP unless ``--all``."""
from __future__ import annotations

import argparse
import json
import time
from urllib.parse import quote

from rich.console import Console, Group
from rich.table import Table

from lbapp.cli.apiclient import add_api_option, call
from lbapp.cli.check import ROWS_SHOWN
from lbapp.config.models import PersistenceModel
from lbapp.environment import EnvironmentProblem


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="the running balancer's VIPs, backends, sessions and next hops")
    add_api_option(p)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="the API's snapshot as JSON")
    out.add_argument("--watch", type=seconds, metavar="SECONDS", help="refresh every SECONDS until Ctrl-C")
    p.add_argument("--rate", action="store_true",
                   help="new connections per second over the controller's last second, and the setup latency")
    p.add_argument("--vip", metavar="NAME", help="this VIP alone (its name or ip:port/protocol)")
    p.add_argument("--all", action="store_true",
                   help=f"a row per backend even past {ROWS_SHOWN} backends (else one row per VIP then)")
    p.set_defaults(func=run)


PAGE = 1000  # VIPs per request: each answers well within the client's timeout at 10,000 VIPs
TRIES = 3


def fetch(args: argparse.Namespace) -> dict:
    """The state: of ``args.vip`` alone, or of every VIP a page per request; a reload that adds
    or removes VIPs between pages (the count or the generation changes) starts the reading over."""
    if args.vip:
        return call(args.api, f"/v1/state?vip={quote(args.vip, safe='')}", token_file=args.token_file)
    for _ in range(TRIES):
        state = call(args.api, f"/v1/state?offset=0&limit={PAGE}", token_file=args.token_file)
        while state.get("next_offset") is not None:
            more = call(args.api, f"/v1/state?offset={state['next_offset']}&limit={PAGE}", token_file=args.token_file)
            if (more["vips_total"], more["generation"]) != (state["vips_total"], state["generation"]):
                break
            state["vips"] += more["vips"]
            state["next_offset"] = more["next_offset"]
        else:
            return state
    raise EnvironmentProblem(f"the controller's VIPs changed while they were read, {TRIES} times: try again")


def seconds(text: str) -> float:
    """An argparse type: a number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds above 0")
    return value


def run(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(fetch(args), indent=1))
        return 0
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 120)
    while True:
        state = fetch(args)
        if args.watch:
            console.clear()
        console.print(render(state, rate=args.rate or bool(args.watch), every_backend=args.all or bool(args.vip)))
        if not args.watch:
            return 0
        time.sleep(max(args.watch, 0.1))  # (a refresh at most ten times a second)


def render(state: dict, rate: bool = False, every_backend: bool = False) -> Group:
    """The snapshot as tables: VIPs with their backends, then balancers and next hops. Past
    ROWS_SHOWN backends (unless ``every_backend``), a row per VIP, those needing attention first,
    ROWS_SHOWN of them at most (a table of 10,000 rows took rich 15 s to lay out)."""
    backend_count = sum(len(v["backends"]) for v in state["vips"])
    per_backend = every_backend or backend_count <= ROWS_SHOWN
    shown = state["vips"] if per_backend else sorted(state["vips"], key=lambda v: not _needs_attention(v))[:ROWS_SHOWN]
    vips = Table(title=f"lbapp: generation {state['generation']}, {state['sessions']} sessions, switches "
                       f"{', '.join(state['switches_connected']) or 'none'} connected"
                       + ("" if per_backend else f"; {len(state['vips']):,} VIPs, {backend_count:,} backends: a row "
                          "per VIP, those with a backend down, drained or set down (or in panic) first"),
                 title_justify="left")
    cols = ["VIP / backend", "scheduler", "weight", "effective", "admin", "health", "active", "connections", "bytes",
            "packets"]
    for col in cols + (["conn/s"] if rate else []):
        vips.add_column(col, justify="left" if col in ("VIP / backend", "scheduler", "admin", "health") else "right")
    for v in shown:
        picks = f"{v['selection']}, conntrack pins" if v.get("pin") == "conntrack" and v["selection"] == "controller" \
            else v["selection"]
        state_of_vip = "[red]panic[/red]" if v.get("panic") else "handed to the switch" if v.get("overloaded") else ""
        # the switch holds these connections (its select group, conntrack): the controller lists none
        listed = v["selection"] != "switch" and v.get("pin") != "conntrack"
        backends = v["backends"]
        persistence = f", {PersistenceModel(**v['persistence']).summary()}" if v.get("persistence") else ""
        vips.add_row(f"[bold]{v['name']}[/bold] {v['vip']}", f"{v['scheduler']} ({picks}){persistence}", "", "", "",
                     state_of_vip,
                     str(v["sessions"]) if listed else "in switch", str(v["connections"]),
                     _count(sum(b.get("bytes", 0) for b in backends)), _count(sum(b.get("packets", 0) for b in backends)),
                     *([f"{v['connections_per_second']:.1f}"] if rate else []))
        for b in backends if per_backend else ():
            health = {"down": "[red]down[/red]", "up": "[green]up[/green]"}.get(b["health"], b["health"])
            vips.add_row(f"  -> {b['ip']}", "", str(b["weight"]), str(b["effective_weight"]), b["admin"], health,
                         str(b["sessions"]) if listed else "-", str(b["connections"]), _count(b.get("bytes", 0)),
                         _count(b.get("packets", 0)), *([f"{b['connections_per_second']:.1f}"] if rate else []))
    hops = Table(title="balancers and next hops", title_justify="left")
    for col in ("balancer", "dpid", "connected", "gateway", "ip", "mac", "port", "age (s)"):
        hops.add_column(col)
    for bal in state["balancers"]:
        for gw in bal["next_hops"]:
            hops.add_row(bal["name"], bal["dpid"], "yes" if bal["connected"] else "no", gw["gateway"], gw["ip"],
                         gw["mac"] or "unknown", str(gw["port"] or "-"), f"{gw['age']:.1f}" if gw["age"] is not None
                         else "-")
    lines = cluster_lines(state["cluster"]) if state.get("cluster") else []
    if len(shown) < len(state["vips"]):
        attention = sum(map(_needs_attention, state["vips"]))
        lines.append(f"{len(state['vips']) - len(shown):,} more VIPs not shown ({attention:,} of all need attention): "
                     "--all for every VIP and backend, --vip NAME for one, --json for the data")
    counters = ", ".join(f"{k} {n}" for k, n in sorted(state["counters"].items())) or "none"
    lines.append(f"not served: {counters}")
    for dpid, policy in sorted(state.get("ct_policy", {}).items()):
        color = "green" if policy["state"] == "in force" else "yellow"
        lines.append(f"conntrack zone policy on {dpid}: [{color}]{policy['state']}[/{color}] ({policy['detail']})")
    if rate:
        latency = state["setup_latency"]
        lines.append(f"packet-ins/s {state['packet_ins_per_second']:.1f}; setup latency: {latency['count']} setups, "
                     f"p50 <= {_ms(latency['p50_at_most'])}, p99 <= {_ms(latency['p99_at_most'])}")
    return Group(vips, hops, *lines)


def _needs_attention(vip: dict) -> bool:
    return bool(vip.get("panic") or vip.get("overloaded")
                or any(b["health"] == "down" or b["admin"] != "up" for b in vip["backends"]))


def cluster_lines(cluster: dict) -> list[str]:
    """Who leads the cluster, since when, and what this member is to each switch."""
    if cluster["leader"] is None:
        lead = "[red]no leader[/red] (an election is under way, or etcd has no quorum)"
    else:
        lead = (f"leader [bold]{cluster['leader']}[/bold], generation {cluster['generation']}, "
                f"leading for {cluster['led_seconds']:.1f} s")
    lines = [f"cluster {cluster['name']}: {lead}; members {', '.join(cluster['members']) or 'unknown'}; "
             f"etcd {cluster['etcd']}"]
    roles = ", ".join(f"{dpid} {role}" for dpid, role in cluster["switches"].items()) or "no switch connected"
    lines.append(f"this member: {cluster['member']}, {cluster['role']}; switches: {roles}")
    return lines


def _count(n: int) -> str:
    """A byte or packet count, short: 1234567 -> 1.2M."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:g} ms"
