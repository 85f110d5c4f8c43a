"""Parsers of the config's values that are more than a type: a datapath id, a MAC, an address."""
from __future__ import annotations

import re
import socket
from typing import Annotated, Any

from pydantic import BeforeValidator

from lbapp import mac as macs
from lbapp.shared import IPv4


def parse_dpid(value: Any) -> int:
    """A datapath id as an int, ``0x...`` or ``00:00:...:01`` (as ovs-ofctl prints it)."""
    if isinstance(value, bool):
        raise ValueError("datapath id must be an integer or hex string")
    if isinstance(value, int):
        dpid = value
    elif isinstance(value, str):
        text = value.strip().lower().replace(":", "")
        try:
            dpid = int(text, 16) if value.strip().lower().startswith("0x") or ":" in value else int(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a datapath id (int, 0x-hex or 00:00:..:01)") from None
    else:
        raise ValueError("datapath id must be an integer or hex string")
    if not 0 < dpid < 1 << 64:
        raise ValueError(f"datapath id {value!r} out of range 1..2^64-1")
    return dpid


def check_mac(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):  # YAML 1.1 reads 12:34:56 as base 60
        raise ValueError("an unquoted MAC address made of digits reads as a number in YAML: quote it, "
                         "like \"12:34:56:00:00:01\"")
    if not isinstance(value, str):
        raise ValueError("MAC address must be a string like 02:00:00:00:00:01")
    return macs.format_mac(macs.parse_mac(value))


_DOTTED_QUAD = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\Z")


def _address(value: Any) -> Any:
    """A plain dotted quad read by the C library (the standard one's parser was a quarter of
    reading 10,000 VIPs); anything else is left to pydantic's own check and its message."""
    if isinstance(value, str) and _DOTTED_QUAD.match(value):
        return IPv4(int.from_bytes(socket.inet_aton(value), "big"))
    return value


Address = Annotated[IPv4, BeforeValidator(_address)]
