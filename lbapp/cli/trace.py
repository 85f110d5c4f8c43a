"""``lbapp trace BRIDGE FLOW [-c CONFIG]``: what the pipeline on a live bridge does with one
packet (``ovs-appctl ofproto/trace``), each rule annotated with its stage, role and owner; for a
packet that opens a connection, the backend the VIP's scheduler would give it now, and why
(asked of the running controller's API)."""
from __future__ import annotations

import argparse
import sys
from urllib.parse import quote

from lbapp.cli.apiclient import ApiRefused, add_api_option, call
from lbapp.config import load_config
from lbapp.environment import EnvironmentProblem, ovs, require_ovs
from lbapp.trace import annotate, connection_of, opens_connection


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trace", help="trace one packet through a live bridge, annotated by stage, role and owner")
    p.add_argument("bridge", help="the OVS bridge (e.g. s1)")
    p.add_argument("flow", help="the packet as ovs-appctl ofproto/trace takes it, e.g. "
                                "in_port=1,tcp,nw_src=200.1.1.19,tp_src=40000,nw_dst=117.78.6.19,tp_dst=80")
    p.add_argument("-c", "--config", help="the balancer config, to name VIPs, routes and backends")
    add_api_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config) if args.config else None
    require_ovs()
    text, hits = annotate(ovs("ovs-appctl", "ofproto/trace", args.bridge, args.flow).stdout, cfg)
    sys.stdout.write(text)
    connection = connection_of(args.flow)
    if opens_connection(hits) and connection is not None:
        print(pick_line(args.api, *connection, token_file=args.token_file))
    return 0


def pick_line(api: str, vip: str, client: str, token_file: str | None = None) -> str:
    """One line: the backend a new connection from ``client`` to ``vip`` would get now, and why."""
    try:
        pick = call(api, f"/v1/vips/{quote(vip, safe='')}/pick?client={quote(client)}", token_file=token_file)
    except (EnvironmentProblem, ApiRefused) as exc:
        return f"New connection: its backend is the controller's to pick; not asked ({exc})"
    if pick["picked_by"] == "switch":
        return f"New connection: the switch picks its backend: {pick['why']}"
    if pick["picked_by"] == "session":
        return f"Known connection: {pick['backend']} ({pick['why']})"
    backend = pick["backend"] or "none (refused)"
    return f"New connection: {pick['scheduler']} would pick {backend} now: {pick['why']}"
