"""``lbapp mac``: show the fabricated MAC of a backend IP, or the IP behind a fabricated MAC."""
from __future__ import annotations

import argparse
import ipaddress

from lbapp import mac as macs
from lbapp.config import load_config


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mac", help="encode an IP to its fabricated MAC, or --decode a MAC")
    p.add_argument("value", help="backend IPv4 address (or a MAC with --decode)")
    p.add_argument("--decode", action="store_true", help="decode a fabricated MAC back to its IP")
    p.add_argument("--layout", choices=sorted(macs.LAYOUTS), default="prefix")
    p.add_argument("--tag", default="aa:bb", help="the two tag octets (default aa:bb)")
    p.add_argument("-c", "--config", help="take scheme, layout and tag from this config file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.config:
        scheme = load_config(args.config).mac_scheme()
    else:
        scheme = macs.ComputedScheme(args.layout, macs.parse_tag(args.tag))
    if args.decode:
        print(scheme.decode(macs.parse_mac(args.value)))
        return 0
    try:
        ip = ipaddress.IPv4Address(args.value)
    except ValueError:
        raise macs.MacError(f"{args.value!r} is not an IPv4 address") from None
    value = scheme.encode(ip)
    print(macs.format_mac(value))
    if macs.is_multicast(value):
        print(f"warning: {macs.format_mac(value)} is a multicast MAC; a config using it is refused")
        return 1
    return 0
