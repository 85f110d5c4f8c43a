"""``lbapp trace BRIDGE FLOW [-c CONFIG]``: what the pipeline on a live bridge does with one
packet (``ovs-appctl ofproto/trace``), each rule annotated with its stage, role and owner."""
from __future__ import annotations

import argparse
import sys

from lbapp.config import load_config
from lbapp.environment import ovs, require_ovs
from lbapp.trace import annotate


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trace", help="trace one packet through a live bridge, annotated by stage, role and owner")
    p.add_argument("bridge", help="the OVS bridge (e.g. s1)")
    p.add_argument("flow", help="the packet as ovs-appctl ofproto/trace takes it, e.g. "
                                "in_port=1,tcp,nw_src=200.1.1.19,tp_src=40000,nw_dst=117.78.6.19,tp_dst=80")
    p.add_argument("-c", "--config", help="the balancer config, to name VIPs, routes and backends")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config) if args.config else None
    require_ovs()
    sys.stdout.write(annotate(ovs("ovs-appctl", "ofproto/trace", args.bridge, args.flow).stdout, cfg))
    return 0
