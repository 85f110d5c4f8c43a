"""``lbapp check FILE``: validate a config; list every error with its field path."""
from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from lbapp import mac as macs
from lbapp.config import load_config


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="validate a config file")
    p.add_argument("file")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing when the file is valid")
    p.add_argument("--all", action="store_true",
                   help=f"a row per backend even past {ROWS_SHOWN} backends (else one row per VIP then)")
    p.set_defaults(func=run)


ROWS_SHOWN = 200  # backends listed one by one up to this many; a larger file is summarised per VIP


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.file)  # ConfigError is reported by main
    if args.quiet:
        return 0
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 160)  # a log or pipe: do not wrap rows
    backends = sum(len(v.backends) for v in cfg.vips)
    if backends > ROWS_SHOWN and not args.all:
        console.print(_per_vip(cfg, args.file, backends))
        return 0
    scheme = cfg.mac_scheme()
    table = Table(title=f"{args.file}: valid", title_justify="left")
    for col in ("VIP", "scheduler", "backend", "weight", "fabricated MAC", "route", "via", "edge"):
        table.add_column(col)
    edge_of = {ip: e.name for e in cfg.edges for ip in e.backends}
    for vip in cfg.vips:
        for b in vip.backends:
            route = cfg.route_for(b.ip)
            table.add_row(f"{vip.name} {vip.ip}:{vip.port}/{vip.protocol}", _scheduler(vip), str(b.ip),
                          str(b.weight), macs.format_mac(scheme.encode(b.ip)),
                          str(route.dst) if route else "-", route.via if route else "-",
                          edge_of.get(b.ip, "-"))
    console.print(table)
    return 0


def _per_vip(cfg, file: str, backends: int) -> Table:
    """One row per VIP: its scheduler and how many backends, routes and edges it uses."""
    table = Table(title=f"{file}: valid: {len(cfg.vips):,} VIPs, {backends:,} backends (--all: a row per backend)",
                  title_justify="left")
    for col in ("VIP", "scheduler", "backends", "routes", "edges"):
        table.add_column(col)
    edge_of = {ip: e.name for e in cfg.edges for ip in e.backends}
    for vip in cfg.vips:
        routes = {str(r.dst) for r in (cfg.route_for(b.ip) for b in vip.backends) if r}
        table.add_row(f"{vip.name} {vip.ip}:{vip.port}/{vip.protocol}", _scheduler(vip), str(len(vip.backends)),
                      ", ".join(sorted(routes)), ", ".join(sorted({edge_of.get(b.ip, "-") for b in vip.backends})))
    return table


def _scheduler(vip) -> str:
    return vip.scheduler + (f", {vip.persistence.summary()}" if vip.persistence else "")
