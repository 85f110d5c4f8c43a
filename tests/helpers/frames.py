"""Test frames, built and read with os-ken's packet library."""
from __future__ import annotations

from dataclasses import dataclass

from os_ken.lib.packet import arp, ethernet, ether_types, in_proto, ipv4, packet, tcp, udp


def tcp_frame(eth_src: str, eth_dst: str, ip_src: str, ip_dst: str, sport: int, dport: int,
              flags: int = tcp.TCP_SYN, ttl: int = 64, payload: bytes = b"") -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=eth_dst, src=eth_src, ethertype=ether_types.ETH_TYPE_IP))
    pkt.add_protocol(ipv4.ipv4(src=ip_src, dst=ip_dst, proto=in_proto.IPPROTO_TCP, ttl=ttl))
    pkt.add_protocol(tcp.tcp(src_port=sport, dst_port=dport, seq=1, bits=flags, window_size=1024))
    if payload:
        pkt.add_protocol(payload)
    pkt.serialize()
    return bytes(pkt.data)


def udp_frame(eth_src: str, eth_dst: str, ip_src: str, ip_dst: str, sport: int, dport: int,
              payload: bytes = b"hello", ttl: int = 64) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=eth_dst, src=eth_src, ethertype=ether_types.ETH_TYPE_IP))
    pkt.add_protocol(ipv4.ipv4(src=ip_src, dst=ip_dst, proto=in_proto.IPPROTO_UDP, ttl=ttl))
    pkt.add_protocol(udp.udp(src_port=sport, dst_port=dport))
    pkt.add_protocol(payload)
    pkt.serialize()
    return bytes(pkt.data)


def arp_reply(src_mac: str, src_ip: str, dst_mac: str, dst_ip: str) -> bytes:
    """An ARP is-at from ``src_mac``, framed from it to ``dst_mac`` (broadcast with ``dst_ip ==
    src_ip``: a gratuitous ARP)."""
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst=dst_mac, src=src_mac, ethertype=ether_types.ETH_TYPE_ARP))
    pkt.add_protocol(arp.arp(opcode=arp.ARP_REPLY, src_mac=src_mac, src_ip=src_ip, dst_mac=dst_mac, dst_ip=dst_ip))
    pkt.serialize()
    return bytes(pkt.data)


def arp_request(eth_src: str, ip_src: str, ip_dst: str) -> bytes:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(dst="ff:ff:ff:ff:ff:ff", src=eth_src, ethertype=ether_types.ETH_TYPE_ARP))
    pkt.add_protocol(arp.arp(opcode=arp.ARP_REQUEST, src_mac=eth_src, src_ip=ip_src,
                             dst_mac="00:00:00:00:00:00", dst_ip=ip_dst))
    pkt.serialize()
    return bytes(pkt.data)


@dataclass
class Seen:
    eth_src: str
    eth_dst: str
    ip_src: str | None = None
    ip_dst: str | None = None
    ttl: int | None = None
    sport: int | None = None
    dport: int | None = None
    l4_checksum_ok: bool | None = None
    arp_op: int | None = None
    arp_sha: str | None = None
    arp_spa: str | None = None
    arp_tpa: str | None = None


def _l4_checksum_ok(frame: bytes) -> bool:
    """Recompute the TCP/UDP checksum over the IPv4 pseudo-header; True when it verifies."""
    ihl = (frame[14] & 0x0F) * 4
    ip_hdr = frame[14:14 + ihl]
    total = int.from_bytes(ip_hdr[2:4], "big")
    seg = frame[14 + ihl:14 + total]
    pseudo = ip_hdr[12:20] + bytes([0, ip_hdr[9]]) + len(seg).to_bytes(2, "big")
    data = pseudo + seg + (b"\0" if len(seg) % 2 else b"")
    s = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s == 0xFFFF


def read(frame: bytes) -> Seen:
    pkt = packet.Packet(frame)
    eth = pkt.get_protocol(ethernet.ethernet)
    seen = Seen(eth.src, eth.dst)
    ip = pkt.get_protocol(ipv4.ipv4)
    if ip:
        seen.ip_src, seen.ip_dst, seen.ttl = ip.src, ip.dst, ip.ttl
        l4 = pkt.get_protocol(tcp.tcp) or pkt.get_protocol(udp.udp)
        if l4:
            seen.sport, seen.dport = l4.src_port, l4.dst_port
            seen.l4_checksum_ok = _l4_checksum_ok(frame)
    a = pkt.get_protocol(arp.arp)
    if a:
        seen.arp_op, seen.arp_sha, seen.arp_spa, seen.arp_tpa = a.opcode, a.src_mac, a.src_ip, a.dst_ip
    return seen


def collect(proc) -> list[Seen]:
    """Wait for a ``Lab.sniff`` capture to end; the frames it saw."""
    out, _ = proc.communicate(timeout=60)
    return [read(bytes.fromhex(line)) for line in out.split() if line and line != "ready"]
