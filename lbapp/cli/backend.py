"""``lbapp backend drain|enable|down|weight VIP BACKEND [N]``: change a backend at runtime through
the controller's API; the change is written to the config file and applied as a reload."""
from __future__ import annotations

import argparse
import sys

from lbapp.cli.apiclient import ApiRefused, add_api_option, call


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backend", help="drain, enable, mark down or re-weight a backend of a running balancer")
    p.add_argument("action", choices=("drain", "enable", "down", "weight"))
    p.add_argument("vip", help="the VIP's name, or ip:port/protocol")
    p.add_argument("backend", help="the backend's address")
    p.add_argument("weight", nargs="?", type=int, help="with weight: the new weight (0-10000)")
    add_api_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if (args.action == "weight") != (args.weight is not None):
        print("error: give a weight with `weight`, and only then", file=sys.stderr)
        return 2
    body = {"action": args.action} | ({"weight": args.weight} if args.weight is not None else {})
    try:
        answer = call(args.api, f"/v1/vips/{_quote(args.vip)}/backends/{_quote(args.backend)}", body,
                      token_file=args.token_file)
    except ApiRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return 2 if exc.status in (400, 404, 413) else 1
    print(f"{answer['done']} (written to {answer['config']})")
    return 0


def _quote(text: str) -> str:
    from urllib.parse import quote
    return quote(text, safe="")
