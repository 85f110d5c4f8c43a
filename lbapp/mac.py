"""Fabricated-MAC codec: backend IPv4 address <-> the MAC the balancer frames packets to.

The source patent (KR 10-2138619) names two schemes. *Computed*: the MAC is the backend IP's
four octets plus a two-octet tag, in one of three layouts. *Table*: an explicit one-to-one
IP<->MAC map. Each layout is declared once as bit segments; the same declaration drives the pure
encode/decode here and the Nicira move actions the switch uses to do the same in the datapath
(see ``lbapp.pipeline.builders``), so the two can never disagree.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Mapping

MAC_BITS = 48
IP_BITS = 32


class MacError(ValueError):
    """A MAC that cannot be used or decoded."""


@dataclass(frozen=True)
class Segment:
    """``n_bits`` of the source (IP address or tag) land at ``mac_ofs`` in the MAC.

    Offsets count from the least significant bit, as Nicira ``move`` actions do.
    """

    src_ofs: int
    mac_ofs: int
    n_bits: int


@dataclass(frozen=True)
class Layout:
    """One computed-MAC layout: where the IP's bits and the tag's bits go in the MAC."""

    name: str
    doc: str
    ip_segments: tuple[Segment, ...]
    tag_segments: tuple[Segment, ...]

    @property
    def first_octet_from_ip(self) -> bool:
        """True when the MAC's first octet (which holds the multicast bit) is an IP octet."""
        return any(seg.mac_ofs + seg.n_bits == MAC_BITS for seg in self.ip_segments)


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout("prefix", "tag octets first: T1:T2:A:B:C:D",
               ip_segments=(Segment(0, 0, 32),), tag_segments=(Segment(0, 32, 16),)),
        Layout("suffix", "tag octets last: A:B:C:D:T1:T2",
               ip_segments=(Segment(0, 16, 32),), tag_segments=(Segment(0, 0, 16),)),
        Layout("split", "tag split after each IP half: A:B:T1:C:D:T2",
               ip_segments=(Segment(16, 32, 16), Segment(0, 8, 16)),
               tag_segments=(Segment(8, 24, 8), Segment(0, 0, 8))),
    )
}


def _octets(text: str, count: int) -> int | None:
    """``count`` colon-separated hex octets as an int, or None when ``text`` is not that."""
    parts = text.strip().split(":")
    if len(parts) != count or not all(1 <= len(p) <= 2 for p in parts):
        return None
    try:
        return int("".join(p.zfill(2) for p in parts), 16)
    except ValueError:
        return None


def parse_mac(text: str) -> int:
    """``'aa:bb:0a:0b:0c:0d'`` -> 48-bit int. Accepts ``:`` or ``-`` separators."""
    value = _octets(text.replace("-", ":"), 6)
    if value is None:
        raise MacError(f"{text!r} is not a MAC address (want six hex octets like aa:bb:0a:0b:0c:0d)")
    return value


def format_mac(value: int) -> str:
    return ":".join(f"{(value >> shift) & 0xFF:02x}" for shift in range(40, -8, -8))


def parse_tag(text: str) -> int:
    """``'aa:bb'`` -> 16-bit int."""
    value = _octets(text, 2)
    if value is None:
        raise MacError(f"tag {text!r} must be two hex octets like aa:bb")
    return value


def is_multicast(mac: int) -> bool:
    """The I/G bit: least significant bit of the first octet (IEEE 802-2014 8.2)."""
    return bool((mac >> 40) & 1)


def _field(value: int, ofs: int, n_bits: int) -> int:
    return (value >> ofs) & ((1 << n_bits) - 1)


class ComputedScheme:
    """MAC = IP octets and a tag, in one of :data:`LAYOUTS`."""

    kind = "computed"

    def __init__(self, layout: str = "prefix", tag: int = 0xAABB) -> None:
        if layout not in LAYOUTS:
            raise MacError(f"unknown layout {layout!r} (choose from {', '.join(LAYOUTS)})")
        self.layout = LAYOUTS[layout]
        self.tag = tag
        # worked out once: every backend's MAC needs them
        self.tag_mask = sum(((1 << s.n_bits) - 1) << s.mac_ofs for s in self.layout.tag_segments)
        self.tag_bits = sum(_field(tag, s.src_ofs, s.n_bits) << s.mac_ofs for s in self.layout.tag_segments)

    def ip_mask(self, prefix_len: int) -> int:
        """Mask over the MAC bits that hold the first ``prefix_len`` bits of the IP."""
        ip_mask = ((1 << prefix_len) - 1) << (IP_BITS - prefix_len) if prefix_len else 0
        return self._place_ip(ip_mask)

    def _place_ip(self, ip: int) -> int:
        return sum(_field(ip, s.src_ofs, s.n_bits) << s.mac_ofs for s in self.layout.ip_segments)

    def encode(self, ip: ipaddress.IPv4Address) -> int:
        return self.tag_bits | self._place_ip(int(ip))

    def decode(self, mac: int) -> ipaddress.IPv4Address:
        if mac & self.tag_mask != self.tag_bits:
            raise MacError(f"{format_mac(mac)} does not carry tag {self.tag_text} "
                           f"in layout {self.layout.name}")
        return ipaddress.IPv4Address(
            sum(_field(mac, s.mac_ofs, s.n_bits) << s.src_ofs for s in self.layout.ip_segments))

    @property
    def tag_text(self) -> str:
        return f"{self.tag >> 8:02x}:{self.tag & 0xFF:02x}"

    def network_match(self, network: ipaddress.IPv4Network) -> tuple[int, int]:
        """(value, mask) on eth_dst matching exactly the fabricated MACs of ``network``."""
        return self.encode(network.network_address), self.tag_mask | self.ip_mask(network.prefixlen)


class TableScheme:
    """An explicit one-to-one IP<->MAC map."""

    kind = "table"

    def __init__(self, entries: Mapping[ipaddress.IPv4Address, int]) -> None:
        self.by_ip = dict(entries)
        self.by_mac = {mac: ip for ip, mac in self.by_ip.items()}
        if len(self.by_mac) != len(self.by_ip):
            raise MacError("the MAC table maps two IPs to one MAC")

    def encode(self, ip: ipaddress.IPv4Address) -> int:
        try:
            return self.by_ip[ip]
        except KeyError:
            raise MacError(f"{ip} has no entry in the MAC table") from None

    def decode(self, mac: int) -> ipaddress.IPv4Address:
        try:
            return self.by_mac[mac]
        except KeyError:
            raise MacError(f"{format_mac(mac)} has no entry in the MAC table") from None


MacScheme = ComputedScheme | TableScheme
