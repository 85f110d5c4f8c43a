"""``lbapp ct-policy``: the conntrack zone policy for VIPs with ``selection: switch``."""
from __future__ import annotations

import argparse
import shlex
import sys

from lbapp import ctzone


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ct-policy", help="print (or --apply) the ovs-vsctl commands that let selection: switch "
                                         "pin connections longer than OVS's 30 s SYN_SENT timeout")
    p.add_argument("--apply", action="store_true", help="run them against the local ovsdb-server")
    p.add_argument("--seconds", type=int, default=ctzone.DEFAULT_PIN_SECONDS,
                   help="how long a connection stays pinned before its next packet is picked afresh")
    p.add_argument("--datapath-type", default="netdev")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.seconds < 1:
        print("error: --seconds must be at least 1", file=sys.stderr)
        return 2
    if not args.apply:
        for cmd in ctzone.commands(args.datapath_type, args.seconds, has_datapath_row=False):
            print(shlex.join(cmd))
        print("# (skip the first command if `ovs-vsctl get Open_vSwitch . datapaths` lists the type already)")
        print("# run them after the bridges exist, and again after the last bridge of the type was deleted:")
        print("# OVS puts a zone policy in force only on a datapath that exists when the policy changes")
        return 0
    ctzone.apply(args.datapath_type, args.seconds)  # an EnvironmentProblem is one line from main
    print(f"conntrack zone {ctzone.CT_ZONE} on {args.datapath_type}: connections stay pinned {args.seconds} s")
    return 0
