"""The ground floor: the types and limits every layer shares. It imports nothing of lbapp, so
no import runs up the layers (config, state, schedulers and pipeline all stand on it)."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal, NamedTuple

IPv4 = ipaddress.IPv4Address

# Layer-4 protocols a VIP can serve, by IP protocol number and by the name the config uses.
TCP, UDP = 6, 17
PROTOCOL_NUMBERS = {"tcp": TCP, "udp": UDP}
PROTOCOL_NAMES = {TCP: "tcp", UDP: "udp"}

# Limits set by the flow cookie's layout (lbapp.pipeline.cookies): a VIP id has 16 bits, and
# 0xFFFF marks a removed backend's lingering flows; a session id is the 32-bit object id.
MAX_VIP_ID = 0xFFFE
MAX_SESSION_ID = 0xFFFFFFFF

# Health probes leave from the balancer's own address with a source port in this block (value,
# mask: 49152-57343); its low 13 bits are the probe's id, so at most this many are in flight.
PROBE_PORT_BASE, PROBE_PORT_MASK = 0xC000, 0xE000
MAX_PROBES_IN_FLIGHT = 0x2000

# How long a connection pinned in conntrack stays pinned while idle: the conntrack zone policy
# lbapp applies (lbapp.ctzone), and how long the controller remembers a pin: conntrack pick
# (lbapp.state.pinmemory), so the memory lasts as long as the pin it stands in for.
PIN_SECONDS = 600

# What the operator says of a backend: up, drained (no new connections, established ones
# finish) or down (the same, and meant as "out of service").
AdminState = Literal["up", "drain", "down"]


def admin_weight(weight: int, admin: AdminState) -> int:
    """A configured weight as far as the operator lets it count: 0 unless up."""
    return weight if admin == "up" else 0


@dataclass(frozen=True)
class ConnKey:
    """The 5-tuple of a connection as the balancer sees it (dst is the VIP)."""

    protocol: int
    src_ip: IPv4
    src_port: int
    dst_ip: IPv4
    dst_port: int


class VipKey(NamedTuple):
    """What names a VIP across reloads: its address, IP protocol number and port.

    A tuple, so the hot path finds a VIP with a plain ``(dst_ip, protocol, dst_port)`` tuple
    built from a packet, at C speed."""

    ip: IPv4
    protocol: int
    port: int

    @classmethod
    def of(cls, vip) -> "VipKey":
        """The key of a configured VIP (anything with ``ip``, ``protocol`` as a name, ``port``)."""
        return cls(vip.ip, PROTOCOL_NUMBERS[vip.protocol], vip.port)

    @classmethod
    def of_connection(cls, key: ConnKey) -> "VipKey":
        return cls(key.dst_ip, key.protocol, key.dst_port)

    @property
    def protocol_name(self) -> str:
        return PROTOCOL_NAMES[self.protocol]

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}/{self.protocol_name}"


class VipBackend(NamedTuple):
    """One backend of one VIP, the VIP named by its key (which outlives reloads): what a
    session, a pin or a source NAT flow belongs to."""

    vip: VipKey
    backend: IPv4

    def __str__(self) -> str:
        return f"backend {self.backend} of {self.vip}"


# One backend of one VIP, the VIP named by its id in the running config: what connection counts,
# rates and traffic are kept by. (VipBackend names the VIP by its key instead.)
VipIdBackend = tuple[int, IPv4]
