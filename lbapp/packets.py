"""Packets the controller builds or reads, with os-ken's packet library."""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from os_ken.lib.packet import arp, ether_types, ethernet, icmp, in_proto, ipv4, packet, tcp, udp

from lbapp.mac import format_mac, parse_mac
from lbapp.shared import ConnKey

BROADCAST = "ff:ff:ff:ff:ff:ff"


class PacketError(ValueError):
    """A packet-in the controller cannot use; the message says what it was."""


@dataclass(frozen=True)
class ArpInfo:
    """The fields of an ARP packet-in the controller uses."""

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


def refusal(data: bytes) -> bytes | None:
    """What a closed port answers to a client's packet to a VIP with no backend left: a TCP
    reset (RST+ACK to a SYN) or an ICMP port unreachable (UDP), from the VIP, framed back to
    the hop it came from. None for anything else (nothing is answered to an answer)."""
    pkt = _parse(data)
    eth, ip = pkt.get_protocol(ethernet.ethernet), pkt.get_protocol(ipv4.ipv4)
    if eth is None or ip is None:
        raise PacketError(f"expected IPv4, got {_summary(pkt)}")
    out = packet.Packet()
    out.add_protocol(ethernet.ethernet(dst=eth.src, src=eth.dst, ethertype=ether_types.ETH_TYPE_IP))
    seg = pkt.get_protocol(tcp.tcp)
    if seg is not None:
        if seg.bits & tcp.TCP_RST:
            return None
        if seg.bits & tcp.TCP_ACK:  # mid-connection: RST with the sequence it expects (RFC 9293 3.10.7.1)
            answer = tcp.tcp(seg.dst_port, seg.src_port, seg.ack, 0, 0, tcp.TCP_RST, 0)
        else:
            length = len(pkt.protocols[-1]) if isinstance(pkt.protocols[-1], (bytes, bytearray)) else 0
            answer = tcp.tcp(seg.dst_port, seg.src_port, 0, (seg.seq + 1 + length) & 0xFFFFFFFF, 0,
                             tcp.TCP_RST | tcp.TCP_ACK, 0)
        out.add_protocol(ipv4.ipv4(ttl=64, proto=in_proto.IPPROTO_TCP, src=ip.dst, dst=ip.src))
        out.add_protocol(answer)
    elif pkt.get_protocol(udp.udp) is not None:
        quoted = data[14:14 + ip.header_length * 4 + 8]  # the offending IP header and 8 bytes (RFC 792)
        out.add_protocol(ipv4.ipv4(ttl=64, proto=in_proto.IPPROTO_ICMP, src=ip.dst, dst=ip.src))
        out.add_protocol(icmp.icmp(icmp.ICMP_DEST_UNREACH, icmp.ICMP_PORT_UNREACH_CODE, 0,
                                   icmp.dest_unreach(data=quoted)))
    else:
        return None
    out.serialize()
    return bytes(out.data)
