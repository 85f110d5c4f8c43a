"""``lbapp flows``: dump a switch's flows (or read a saved dump) and explain them."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lbapp.config import load_config
from lbapp.environment import ovs, require_ovs
from lbapp.flows import Explanation, Group, explain, explain_groups, normalize
from lbapp.pipeline.tables import TABLES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flows", help="explain a switch's flows by stage, VIP, backend and session")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("bridge", nargs="?", help="a live OVS bridge (runs ovs-ofctl dump-flows)")
    src.add_argument("-f", "--file", help="a saved `ovs-ofctl dump-flows` text ('-' for stdin)")
    p.add_argument("-c", "--config", help="the balancer config, to name VIPs, routes and backends")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="machine-readable output")
    out.add_argument("--normalize", action="store_true",
                     help="print the dump normalised (no counters, ages, generations; sorted), as in flows/")
    p.set_defaults(func=run)


def read_dump(bridge: str | None, file: str | None) -> str:
    if file:
        return sys.stdin.read() if file == "-" else Path(file).read_text()
    # Nicira flow stats (OpenFlow 1.0 + NXM) carry idle_age; OpenFlow 1.3's do not. Use them
    # when the bridge allows OpenFlow 1.0, else fall back to 1.3.
    require_ovs()
    for version in ("OpenFlow10", "OpenFlow13"):
        result = ovs("ovs-ofctl", "-O", version, "dump-flows", bridge, check=version == "OpenFlow13")
        if result.returncode == 0:
            return result.stdout


def run(args: argparse.Namespace) -> int:
    text = read_dump(args.bridge, args.file)
    if args.normalize:
        sys.stdout.write(normalize(text))
        return 0
    cfg = load_config(args.config) if args.config else None
    result = explain(text, cfg)
    groups = explain_groups(read_groups(args.bridge), cfg) if args.bridge else []
    if args.json:
        json.dump(result.to_json() | {"groups": [asdict(g) for g in groups]}, sys.stdout, indent=2)
        print()
        return 0
    console = Console()
    show(result, console)
    show_groups(groups, console)
    return 0


def read_groups(bridge: str) -> str:
    return ovs("ovs-ofctl", "-O", "OpenFlow13", "dump-groups", bridge).stdout


def show_groups(groups: list[Group], console: Console) -> None:
    if not groups:
        return
    table = Table(title=f"groups: {len(groups)} (selection: switch: slots of 256 per backend)", title_justify="left")
    for col in ("group", "type", "owner", "slots per backend"):
        table.add_column(col, overflow="fold")
    for g in groups:
        table.add_row(f"{g.group_id:#x}", g.kind, g.owner, " ".join(f"{b}={n}" for b, n in g.slots.items()) or "-")
    console.print(table)


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _age(value: float | None) -> str:
    return "-" if value is None else f"{value:g}s"


def show(result: Explanation, console: Console) -> None:
    if not console.is_terminal:
        console.width = max(console.width, 160)
    for stage, flows in result.stages.items():
        t = TABLES[stage]
        table = Table(title=f"table {t.table_id} {stage}: {len(flows)} flows. {t.doc}", title_justify="left")
        for col in ("prio", "role", "owner", "match", "actions", "packets", "bytes"):
            table.add_column(col, overflow="fold")
        for f in sorted(flows, key=lambda f: -f.priority):
            if stage == "session" and f.role == "connection":
                continue  # listed below, one line per session
            table.add_row(str(f.priority), f.role or "?", f.owner, f.match or "*", f.actions, _count(f.packets),
                          _count(f.bytes))
        console.print(table)
    sessions = Table(title=f"sessions: {len(result.sessions)}", title_justify="left")
    for col in ("id", "client", "VIP", "backend (fabricated MAC)", "packets", "bytes", "idle", "age"):
        sessions.add_column(col)
    for s in sorted(result.sessions, key=lambda s: s.session_id):
        sessions.add_row(str(s.session_id), s.client, s.vip, f"{s.backend} ({s.fabricated_mac})", str(s.packets),
                         str(s.bytes), _age(s.idle_age), _age(s.duration))
    console.print(sessions)
    if result.foreign:
        foreign = Table(title=f"not lbapp's: {len(result.foreign)} flows", title_justify="left")
        for col in ("table", "prio", "cookie", "match", "actions", "packets"):
            foreign.add_column(col, overflow="fold")
        for f in result.foreign:
            foreign.add_row(str(f.table), str(f.priority), f.cookie, f.match or "*", f.actions, str(f.packets))
        console.print(foreign)
    for line in result.unparsed:
        console.print(f"[yellow]could not parse:[/yellow] {line}")
