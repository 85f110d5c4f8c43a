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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.file)  # ConfigError is reported by main
    if args.quiet:
        return 0
    scheme = cfg.mac_scheme()
    table = Table(title=f"{args.file}: valid", title_justify="left")
    for col in ("VIP", "scheduler", "backend", "weight", "fabricated MAC", "route", "via", "edge"):
        table.add_column(col)
    edge_of = {ip: e.name for e in cfg.edges for ip in e.backends}
    for vip in cfg.vips:
        for b in vip.backends:
            route = cfg.route_for(b.ip)
            scheduler = vip.scheduler + (f", {vip.persistence.summary()}" if vip.persistence else "")
            table.add_row(f"{vip.name} {vip.ip}:{vip.port}/{vip.protocol}", scheduler, str(b.ip),
                          str(b.weight), macs.format_mac(scheme.encode(b.ip)),
                          str(route.dst) if route else "-", route.via if route else "-",
                          edge_of.get(b.ip, "-"))
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 160)  # a log or pipe: do not wrap rows
    console.print(table)
    return 0
