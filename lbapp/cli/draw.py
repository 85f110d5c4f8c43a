"""``lbapp draw TOPOLOGY``: a picture of a topology, generated from its graph."""
from __future__ import annotations

import argparse
from pathlib import Path

from lbapp.config import load_config
from lbapp.lab import ROOT, load_topology
from lbapp.topograph import draw


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("draw", help="draw a topology in topologies/ as a PNG")
    p.add_argument("topology", nargs="+", help="topology names, e.g. cross_vlan")
    p.add_argument("-o", "--out-dir", default=str(ROOT / "docs" / "topologies"), help="where the PNGs go")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.topology:
        print(draw(load_topology(name), out / f"{name}.png", balancer_addresses(name)))
    return 0


def balancer_addresses(name: str) -> dict[int, str]:
    """Each balancer switch's address, by dpid, from the topology's config."""
    cfg = load_config(ROOT / "topologies" / f"{name}.yaml")
    return {b.dpid: str(b.address.ip) for _, b in cfg.all_balancers()}
