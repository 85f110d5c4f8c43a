"""Health probes on the wire: the frames the controller sends into the balancer switch, and
what their answers mean.

A probe leaves from the balancer's own address and MAC, framed to the backend's fabricated MAC,
so the switch translates and routes it like client traffic (classify -> translate -> next hop ->
router -> the backend's VLAN and edge). Answers come back to the balancer's address, and the
probe stage hands them to the controller. A probe is known by its source port (TCP, UDP; the
low 13 bits are its id, under PORT_BASE) or its ICMP echo id, not by the answer's source: the
edge's source NAT rewrites replies from a VIP's service port to the VIP.

- tcp: SYN; SYN/ACK passes, RST fails; the opened connection is reset.
- http: the same handshake, then one GET; the answer's status line passes or fails; reset.
- udp: one datagram; an answer passes; ICMP port unreachable (or silence) fails.
- icmp: echo request; echo reply passes.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from os_ken.lib.packet import ether_types, ethernet, icmp, in_proto, ipv4, packet, tcp, udp

from lbapp.mac import format_mac
from lbapp.shared import MAX_PROBES_IN_FLIGHT as MAX_IN_FLIGHT
from lbapp.shared import PROBE_PORT_BASE as PORT_BASE
from lbapp.shared import PROBE_PORT_MASK as PORT_MASK
from lbapp.shared import IPv4
from lbapp.state.health import Target
TTL = 64
UDP_PAYLOAD = b"lbapp health check\n"


def probe_port(probe: int) -> int:
    return PORT_BASE | (probe & (MAX_IN_FLIGHT - 1))


def probe_of_port(port: int) -> int | None:
    return port & (MAX_IN_FLIGHT - 1) if port & PORT_MASK == PORT_BASE else None


@dataclass(frozen=True)
class Verdict:
    """What an answer says of probe ``probe``: passed or failed, and why."""

    probe: int
    passed: bool
    reason: str


@dataclass
class _Open:
    """A probe in flight: its target, where it left from, and for TCP our side of the conversation."""

    target: Target
    dpid: int  # the balancer switch it went into (its follow-ups go there too)
    src_mac: int  # that balancer's MAC and address
    src_ip: IPv4
    dst_mac: int  # the backend's fabricated MAC
    isn: int = 0
    request: bytes = b""  # http: the GET, once sent
    their_next: int | None = None  # the backend's next sequence number, once its SYN/ACK came

    @property
    def our_next(self) -> int:
        return (self.isn + 1 + len(self.request)) & 0xFFFFFFFF


@dataclass
class Answered:
    """What ``Prober.answer`` made of an answer: a verdict if there is one, and the frames to send
    next."""

    dpid: int  # where the follow-up frames go
    verdict: Verdict | None = None  # None: no verdict yet (http: the GET went out)
    frames: list[bytes] = field(default_factory=list)  # to send: the GET, or the reset


class Prober:
    """Builds probe frames and reads answers; knows each probe in flight (an answer must fit
    the probe's type) and each TCP probe's sequence numbers. Changed only by
    lbapp.healthcheck.Checker, its owner: ``start`` and ``forget`` as checks come due, time out
    or go, ``answer`` for the probe stage's packet-ins."""

    def __init__(self, seed: int | None = None) -> None:
        self.open: dict[int, _Open] = {}
        self._random = random.Random(seed)

    def start(self, probe: int, target: Target, dpid: int, src_mac: int, src_ip: IPv4, dst_mac: int) -> bytes:
        """The first frame of probe ``probe`` to ``target``, from the balancer ``dpid`` (its MAC and
        address), framed to ``dst_mac`` (the backend's fabricated MAC)."""
        conv = self.open[probe] = _Open(target, dpid, src_mac, src_ip, dst_mac, self._random.getrandbits(32))
        if target.type == "icmp":
            return self._frame(conv, in_proto.IPPROTO_ICMP,
                               icmp.icmp(icmp.ICMP_ECHO_REQUEST, 0, 0, icmp.echo(probe, 1, b"lbapp")))
        if target.type == "udp":
            return self._frame(conv, in_proto.IPPROTO_UDP, udp.udp(probe_port(probe), target.port), UDP_PAYLOAD)
        return self._tcp(conv, probe, conv.isn, 0, tcp.TCP_SYN)

    def forget(self, probe: int) -> None:
        """The probe is over (timed out): forget its sequence numbers."""
        self.open.pop(probe, None)

    def answer(self, data: bytes) -> Answered | None:
        """Read one answer to a probe; None if it answers no probe in flight."""
        try:
            pkt = packet.Packet(data)
        except Exception:  # noqa: BLE001 - os-ken raises assorted errors on truncated frames
            return None
        ip = pkt.get_protocol(ipv4.ipv4)
        if ip is None:
            return None
        if (seg := pkt.get_protocol(tcp.tcp)) is not None:
            return self._tcp_answer(seg, pkt, ip.dst)
        if (dgram := pkt.get_protocol(udp.udp)) is not None:
            probe = self._expecting(probe_of_port(dgram.dst_port), ip.dst, "udp")
            if probe is None or dgram.src_port != self.open[probe].target.port:
                return None
            return Answered(self.open.pop(probe).dpid, Verdict(probe, True, "answered"))
        if (msg := pkt.get_protocol(icmp.icmp)) is not None:
            return self._icmp_answer(msg, ip.src, ip.dst)
        return None

    # --- TCP and HTTP ---

    def _tcp_answer(self, seg: tcp.tcp, pkt: packet.Packet, to: str) -> Answered | None:
        probe = self._expecting(probe_of_port(seg.dst_port), to, "tcp", "http")
        if probe is None or seg.src_port != self.open[probe].target.port:
            return None
        conv = self.open[probe]
        if seg.bits & tcp.TCP_RST:
            # only a reset that knows the connection (RFC 5961): it acknowledges what we sent,
            # or sits at the backend's next sequence number
            if not (seg.bits & tcp.TCP_ACK and seg.ack == conv.our_next or seg.seq == conv.their_next):
                return None
            self.open.pop(probe)
            return Answered(conv.dpid, Verdict(probe, False, "reset"))
        if seg.bits & (tcp.TCP_SYN | tcp.TCP_ACK) == tcp.TCP_SYN | tcp.TCP_ACK and not conv.request:
            if seg.ack != (conv.isn + 1) & 0xFFFFFFFF:
                return None  # not an answer to our SYN
            if conv.target.type == "tcp":
                self.open.pop(probe)
                return Answered(conv.dpid, Verdict(probe, True, "connected"),
                                [self._tcp(conv, probe, conv.isn + 1, 0, tcp.TCP_RST)])
            conv.request = self._get(conv.target)
            conv.their_next = (seg.seq + 1) & 0xFFFFFFFF
            return Answered(conv.dpid, None, [self._tcp(conv, probe, conv.isn + 1, seg.seq + 1,
                                                        tcp.TCP_ACK | tcp.TCP_PSH, conv.request)])
        payload = _payload(pkt)
        if not conv.request or seg.seq != conv.their_next:
            return None  # before the handshake, or not where the backend's answer starts
        if not (payload or seg.bits & tcp.TCP_FIN):
            return Answered(conv.dpid)  # a bare ACK of our GET: the answer is still to come
        self.open.pop(probe)
        reset = [self._tcp(conv, probe, conv.isn + 1 + len(conv.request), 0, tcp.TCP_RST)]
        status = _status(payload)
        if status is None:
            return Answered(conv.dpid, Verdict(probe, False, "no HTTP status line"), reset)
        low, high = conv.target.expect
        return Answered(conv.dpid, Verdict(probe, low <= status <= high, f"status {status}"), reset)

    def _get(self, target: Target) -> bytes:
        host = target.host or str(target.backend)
        return (f"GET {target.path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: lbapp-health\r\n"
                "Connection: close\r\n\r\n").encode("ascii")

    def _tcp(self, conv: _Open, probe: int, seq: int, ack: int, bits: int, payload: bytes = b"") -> bytes:
        option = [tcp.TCPOptionMaximumSegmentSize(1460)] if bits == tcp.TCP_SYN else None
        return self._frame(conv, in_proto.IPPROTO_TCP,
                           tcp.tcp(probe_port(probe), conv.target.port, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0, bits,
                                   64240, option=option), payload)

    # --- ICMP ---

    def _icmp_answer(self, msg: icmp.icmp, frm: str, to: str) -> Answered | None:
        if msg.type == icmp.ICMP_ECHO_REPLY and isinstance(msg.data, icmp.echo):
            probe = self._expecting(msg.data.id, to, "icmp")
            if probe is None or frm != str(self.open[probe].target.backend):  # no NAT rewrites ICMP
                return None
            return Answered(self.open.pop(probe).dpid, Verdict(probe, True, "echo reply"))
        if msg.type == icmp.ICMP_DEST_UNREACH and isinstance(msg.data, icmp.dest_unreach):
            inner = msg.data.data  # the offending datagram: its IP header and first 8 bytes
            if len(inner) < 28 or inner[0] >> 4 != 4:
                return None
            at = (inner[0] & 0x0F) * 4
            if len(inner) < at + 4:
                return None
            probe = self._expecting(probe_of_port(int.from_bytes(inner[at:at + 2], "big")), to, "udp", "tcp", "http")
            if probe is None:
                return None
            target = self.open[probe].target
            # the datagram it quotes must be the probe's own: to the backend, its port, its protocol
            proto = in_proto.IPPROTO_UDP if target.type == "udp" else in_proto.IPPROTO_TCP
            if (inner[9] != proto or bytes(inner[16:20]) != target.backend.packed
                    or int.from_bytes(inner[at + 2:at + 4], "big") != target.port):
                return None
            return Answered(self.open.pop(probe).dpid, Verdict(probe, False, f"unreachable (code {msg.code})"))
        return None

    def _expecting(self, probe: int | None, to: str, *types: str) -> int | None:
        """``probe`` if it is in flight, of one of ``types`` and was sent from ``to``; an answer
        that fits no probe (late, forged, of another type) is not one."""
        conv = self.open.get(probe) if probe is not None else None
        return probe if conv is not None and conv.target.type in types and str(conv.src_ip) == to else None

    def _frame(self, conv: _Open, proto: int, l4, payload: bytes = b"") -> bytes:
        pkt = packet.Packet()
        pkt.add_protocol(ethernet.ethernet(dst=format_mac(conv.dst_mac), src=format_mac(conv.src_mac),
                                           ethertype=ether_types.ETH_TYPE_IP))
        pkt.add_protocol(ipv4.ipv4(ttl=TTL, proto=proto, src=str(conv.src_ip), dst=str(conv.target.backend)))
        pkt.add_protocol(l4)
        if payload:
            pkt.add_protocol(payload)
        pkt.serialize()
        return bytes(pkt.data)


def _payload(pkt: packet.Packet) -> bytes:
    last = pkt.protocols[-1] if pkt.protocols else b""
    return last if isinstance(last, (bytes, bytearray)) else b""


def _status(payload: bytes) -> int | None:
    """The status of an HTTP answer's first line (``HTTP/1.1 503 ...``)."""
    line = bytes(payload).split(b"\r\n", 1)[0].split()
    if len(line) >= 2 and line[0].startswith(b"HTTP/") and line[1].isdigit() and len(line[1]) == 3:
        return int(line[1])
    return None
