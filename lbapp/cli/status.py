"""``lbapp status [--json] [--rate] [--watch SECONDS]``: the running balancer, per VIP and
backend, ipvsadm-style, from the controller's API."""
from __future__ import annotations

import argparse
import json
import time

from rich.console import Console, Group
from rich.table import Table

from lbapp.cli.apiclient import add_api_option, call
from lbapp.config.models import PersistenceModel


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="the running balancer's VIPs, backends, sessions and next hops")
    add_api_option(p)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="the API's snapshot as JSON")
    out.add_argument("--watch", type=seconds, metavar="SECONDS", help="refresh every SECONDS until Ctrl-C")
    p.add_argument("--rate", action="store_true",
                   help="new connections per second over the controller's last second, and the setup latency")
    p.set_defaults(func=run)


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
        print(json.dumps(call(args.api, "/v1/state", token_file=args.token_file), indent=1))
        return 0
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 120)
    while True:
        state = call(args.api, "/v1/state", token_file=args.token_file)
        if args.watch:
            console.clear()
        console.print(render(state, rate=args.rate or bool(args.watch)))
        if not args.watch:
            return 0
        time.sleep(max(args.watch, 0.1))  # (a refresh at most ten times a second)


def render(state: dict, rate: bool = False) -> Group:
    """The snapshot as tables: VIPs with their backends, then balancers and next hops."""
    vips = Table(title=f"lbapp: generation {state['generation']}, {state['sessions']} sessions, switches "
                       f"{', '.join(state['switches_connected']) or 'none'} connected", title_justify="left")
    cols = ["VIP / backend", "scheduler", "weight", "effective", "admin", "health", "active", "connections", "bytes",
            "packets"]
    for col in cols + (["conn/s"] if rate else []):
        vips.add_column(col, justify="left" if col in ("VIP / backend", "scheduler", "admin", "health") else "right")
    for v in state["vips"]:
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
        for b in backends:
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
