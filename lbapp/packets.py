"""Packets the controller builds or reads, with os-ken's packet library."""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from os_ken.lib.packet import arp, ethernet, ether_types, ipv4, packet, tcp, udp

from lbapp.mac import format_mac, parse_mac
from lbapp.shared import ConnKey

BROADCAST = "ff:ff:ff:ff:ff:ff"


class PacketError(ValueError):
    """A packet-in the controller cannot use; the message says what it was."""


@dataclass(frozen=True)
class ArpInfo:
    op: int
    src_mac: int
    src_ip: ipaddress.IPv4Address
    dst_ip: ipaddress.IPv4Address
    eth_src: int


def arp_request(src_mac: int, src_ip: ipaddress.IPv4Address, target_ip: ipaddress.IPv4Address) -> bytes:
    """A broadcast ARP who-has, as the balancer sends to probe a gateway."""
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=BROADCAST, src=format_mac(src_mac), ethertype=ether_types.ETH_TYPE_ARP))
    pkt.add_protocol(arp.arp(opcode=arp.ARP_REQUEST, src_mac=format_mac(src_mac), src_ip=str(src_ip),
                             dst_mac="00:00:00:00:00:00", dst_ip=str(target_ip)))
    pkt.serialize()
    return bytes(pkt.data)


def arp_reply(request: ArpInfo, answer_mac: int) -> bytes:
    """The reply to ``request``: ``request.dst_ip`` is at ``answer_mac``."""
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=format_mac(request.eth_src), src=format_mac(answer_mac),
                                       ethertype=ether_types.ETH_TYPE_ARP))
    pkt.add_protocol(arp.arp(opcode=arp.ARP_REPLY, src_mac=format_mac(answer_mac), src_ip=str(request.dst_ip),
                             dst_mac=format_mac(request.src_mac), dst_ip=str(request.src_ip)))
    pkt.serialize()
    return bytes(pkt.data)


def _parse(data: bytes) -> packet.Packet:
    try:
        return packet.Packet(data)
    except Exception as exc:  # os-ken raises assorted errors on truncated frames
        raise PacketError(f"undecodable frame of {len(data)} bytes: {exc}") from None


def parse_arp(data: bytes) -> ArpInfo:
    pkt = _parse(data)
    eth, a = pkt.get_protocol(ethernet.ethernet), pkt.get_protocol(arp.arp)
    if eth is None or a is None:
        raise PacketError(f"expected an ARP frame, got {_summary(pkt)}")
    return ArpInfo(a.opcode, parse_mac(a.src_mac), ipaddress.IPv4Address(a.src_ip),
                   ipaddress.IPv4Address(a.dst_ip), parse_mac(eth.src))


def parse_connection(data: bytes) -> ConnKey:
    """The 5-tuple of a TCP or UDP over IPv4 frame."""
    pkt = _parse(data)
    ip = pkt.get_protocol(ipv4.ipv4)
    l4 = pkt.get_protocol(tcp.tcp) or pkt.get_protocol(udp.udp)
    if ip is None or l4 is None:
        raise PacketError(f"expected TCP or UDP over IPv4, got {_summary(pkt)}")
    return ConnKey(ip.proto, ipaddress.IPv4Address(ip.src), l4.src_port, ipaddress.IPv4Address(ip.dst),
                   l4.dst_port)


_IPV4_L4 = struct.Struct("!4s4sHH")


def connection_key(data: bytes) -> ConnKey:
    """:func:`parse_connection` for the common frame (untagged IPv4 without options, TCP or
    UDP) read straight from fixed offsets; anything else takes the general parser."""
    if len(data) >= 38 and data[12] == 0x08 and data[13] == 0x00 and data[14] == 0x45 and data[23] in (6, 17) \
            and not int.from_bytes(data[20:22], "big") & 0x3FFF:  # not a fragment
        src, dst, sport, dport = _IPV4_L4.unpack_from(data, 26)
        return ConnKey(data[23], ipaddress.IPv4Address(src), sport, ipaddress.IPv4Address(dst), dport)
    return parse_connection(data)


def _summary(pkt: packet.Packet) -> str:
    names = [getattr(p, "protocol_name", type(p).__name__) for p in pkt.protocols]
    return "/".join(names) or "an empty frame"
