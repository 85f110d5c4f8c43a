"""A fake OpenFlow 1.3 switch that loads a controller with new connections.

It does the handshake a real switch does (hello, features reply, port-description and other
multipart replies, echo, barrier, get-config), then sends packet-ins for new TCP connections to
a VIP, as the session table's controller flow would, keeping at most ``window`` outstanding. A
setup completes when the controller sends the packet back out (a packet-out carrying the
connection's frame); flow-mods are counted too. Replies are matched first-in first-out: a
controller handles one switch's messages in order.

Standard library only and pre-built messages patched in place, so the generator is not what
limits the rate (measured: well over 100k packet-ins/s on its own).
"""
from __future__ import annotations

import socket
import struct
import time
from collections import deque
from dataclasses import dataclass, field

OFP_VERSION = 4
HELLO, ECHO_REQUEST, ECHO_REPLY, FEATURES_REQUEST, FEATURES_REPLY = 0, 2, 3, 5, 6
GET_CONFIG_REQUEST, GET_CONFIG_REPLY, PACKET_IN, PACKET_OUT, FLOW_MOD = 7, 8, 10, 13, 14
MULTIPART_REQUEST, MULTIPART_REPLY, BARRIER_REQUEST, BARRIER_REPLY, ROLE_REQUEST, ROLE_REPLY = 18, 19, 20, 21, 24, 25
HEADER = struct.Struct("!BBHI")
EXPERIMENTER, ONF_EXPERIMENTER, ONF_BUNDLE_ADD = 4, 0x4F4E4600, 2301


def _checksum(data: bytes) -> int:
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def syn_frame(src_ip: str, vip: str, vip_port: int, src_mac: bytes, dst_mac: bytes) -> bytearray:
    """An Ethernet/IPv4/TCP SYN; the TCP source port is patched per connection (offset 34)."""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0, 64, 6, 0, socket.inet_aton(src_ip), socket.inet_aton(vip))
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    tcp = struct.pack("!HHIIBBHHH", 40000, vip_port, 1, 0, 5 << 4, 0x02, 1024, 0, 0)
    return bytearray(dst_mac + src_mac + b"\x08\x00" + ip + tcp)


@dataclass
class Result:
    completed: int
    seconds: float
    flow_mods: int
    latencies_us: list[float] = field(repr=False)

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_us:
            return float("nan")
        ordered = sorted(self.latencies_us)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


class FakeSwitch:
    def __init__(self, host: str, port: int, dpid: int, cookie: int, vip: str = "117.78.6.19", vip_port: int = 80,
                 in_port: int = 1) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.dpid, self.cookie, self.vip_port = dpid, cookie, vip_port
        self.buf = bytearray()
        self.flow_mods = 0
        self.packet_outs = 0
        self.vip_bytes = socket.inet_aton(vip)
        frame = syn_frame("200.1.1.19", vip, vip_port, b"\xaa\xbb\xcc\xdd\xee\xff", b"\x02\x00\x00\x00\x00\x02")
        # OF1.3 packet-in: buffer_id, total_len, reason (action), table 20, cookie, OXM match
        # {in_port} padded to 16 bytes, 2 pad bytes, then the frame.
        match = struct.pack("!HHHBBI", 1, 12, 0x8000, 0 << 1, 4, in_port) + b"\x00" * 4
        body = struct.pack("!IHBBQ", 0xFFFFFFFF, len(frame), 1, 20, cookie) + match + b"\x00\x00"
        self.packet_in = bytearray(HEADER.pack(OFP_VERSION, PACKET_IN, 8 + len(body) + len(frame), 0) + body + frame)
        self.frame_offset = 8 + len(body)
        self.xid = 0
        self.gateway: tuple[bytes, bytes, int] | None = None  # (IP, MAC, classify cookie): answers ARP probes
        self.probe_cookie: int | None = None  # answers health probes (TCP SYNs) with SYN/ACKs
        self.probes_answered = 0

    def answer_probes(self, gateway_ip: str, gateway_mac: bytes, gateway_cookie: int, probe_cookie: int) -> None:
        """Act as the network behind the balancer for its probes: the gateway answers the
        balancer's ARP probes, and every backend answers a health probe's SYN with a SYN/ACK."""
        self.gateway = (socket.inet_aton(gateway_ip), gateway_mac, gateway_cookie)
        self.probe_cookie = probe_cookie

    def _send_packet_in(self, frame: bytes, table_id: int, cookie: int, in_port: int = 3) -> None:
        match = struct.pack("!HHHBBI", 1, 12, 0x8000, 0 << 1, 4, in_port) + b"\x00" * 4
        body = struct.pack("!IHBBQ", 0xFFFFFFFF, len(frame), 1, table_id, cookie) + match + b"\x00\x00"
        self._send(PACKET_IN, 0, body + frame)

    def _answer(self, data: memoryview) -> None:
        """The reply the network would send to a controller's packet-out, if any."""
        if data[12:14] == b"\x08\x06" and self.gateway and data[20:22] == b"\x00\x01" \
                and bytes(data[38:42]) == self.gateway[0]:  # ARP who-has the gateway
            gw_ip, gw_mac, cookie = self.gateway
            arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, gw_mac, gw_ip, bytes(data[22:28]),
                              bytes(data[28:32]))
            self._send_packet_in(bytes(data[6:12]) + gw_mac + b"\x08\x06" + arp, 0, cookie)
        elif self.probe_cookie is not None and len(data) >= 54 and data[12:14] == b"\x08\x00" and data[23] == 6 \
                and data[47] & 0x3F == 0x02 and struct.unpack_from("!H", data, 34)[0] & 0xE000 == 0xC000:
            src, dst = bytes(data[26:30]), bytes(data[30:34])
            sport, dport, seq = struct.unpack_from("!HHI", data, 34)
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 63, 6, 0, dst, src)
            ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
            tcp = struct.pack("!HHIIBBHHH", dport, sport, 7, (seq + 1) & 0xFFFFFFFF, 5 << 4, 0x12, 65000, 0, 0)
            self._send_packet_in(bytes(data[6:12]) + bytes(data[0:6]) + b"\x08\x00" + ip + tcp, 15, self.probe_cookie)
            self.probes_answered += 1

    # --- the handshake and housekeeping replies ---

    def _send(self, msg_type: int, xid: int, body: bytes = b"") -> None:
        self.sock.sendall(HEADER.pack(OFP_VERSION, msg_type, 8 + len(body), xid) + body)

    def handshake(self, settle: float = 1.0, quiet: float | None = None) -> None:
        """Hello, features, port descriptions; then answer whatever comes for ``settle`` seconds
        (the controller installs its pipeline), or with ``quiet``, until flow-mods have come and
        then no flow-mod for ``quiet`` seconds (a pipeline of thousands of VIPs takes a while;
        probes and statistics requests go on meanwhile)."""
        self._send(HELLO, 1)
        now = time.monotonic()
        deadline, last, seen = now + settle, now, 0
        self.sock.settimeout(0.05)
        while time.monotonic() < deadline:
            if self.flow_mods != seen:
                last, seen = time.monotonic(), self.flow_mods
            elif quiet is not None and seen and time.monotonic() - last > quiet:
                return
            try:
                self._pump(None)
            except socket.timeout:
                pass

    def _handle(self, msg_type: int, xid: int, msg: memoryview, completions) -> None:
        if msg_type == PACKET_OUT:
            self.packet_outs += 1
            actions_len = struct.unpack_from("!H", msg, 16)[0]
            data = msg[24 + actions_len:]
            # a setup's packet-out re-injects the connection's frame: IPv4/TCP to the VIP
            if len(data) >= 38 and data[23] == 6 and data[30:34] == self.vip_bytes and completions is not None:
                completions()
            elif self.gateway is not None:
                self._answer(data)
        elif msg_type == FLOW_MOD:
            self.flow_mods += 1
        elif msg_type == EXPERIMENTER and struct.unpack_from("!II", msg, 8) == (ONF_EXPERIMENTER, ONF_BUNDLE_ADD):
            self.flow_mods += msg[24 + 1] == FLOW_MOD  # a flow-mod inside a bundle (no bundle replies needed)
        elif msg_type == FEATURES_REQUEST:
            self._send(FEATURES_REPLY, xid, struct.pack("!QIBB2xII", self.dpid, 0, 254, 0, 0x4F, 0))
        elif msg_type == MULTIPART_REQUEST:
            mp_type = struct.unpack_from("!H", msg, 8)[0]
            self._send(MULTIPART_REPLY, xid, struct.pack("!HH4x", mp_type, 0))
        elif msg_type == ECHO_REQUEST:
            self._send(ECHO_REPLY, xid, bytes(msg[8:]))
        elif msg_type == BARRIER_REQUEST:
            self._send(BARRIER_REPLY, xid)
        elif msg_type == GET_CONFIG_REQUEST:
            self._send(GET_CONFIG_REPLY, xid, struct.pack("!HH", 0, 0xFFFF))
        elif msg_type == ROLE_REQUEST:
            self._send(ROLE_REPLY, xid, bytes(msg[8:]))

    def _pump(self, completions) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("the controller closed the connection")
        self.buf += chunk
        view = memoryview(self.buf)
        pos = 0
        while len(self.buf) - pos >= 8:
            _, msg_type, length, xid = HEADER.unpack_from(view, pos)
            if len(self.buf) - pos < length:
                break
            self._handle(msg_type, xid, view[pos:pos + length], completions)
            pos += length
        view.release()
        del self.buf[:pos]

    # --- the load ---

    def _client(self, n: int) -> None:
        """Connection ``n``: source port 1024 + n mod 64000, source IP 200.1.x.y beyond that."""
        host = n // 64000
        if host != getattr(self, "_host", 0):
            self._host = host
            ip_at = self.frame_offset + 14
            # the source address's last two octets: 200.1.(1 + host // 256).(host % 256)
            struct.pack_into("!BB", self.packet_in, ip_at + 14, (1 + (host >> 8)) & 0xFF, host & 0xFF)
            struct.pack_into("!H", self.packet_in, ip_at + 10, 0)
            struct.pack_into("!H", self.packet_in, ip_at + 10, _checksum(bytes(self.packet_in[ip_at:ip_at + 20])))
        struct.pack_into("!H", self.packet_in, self.frame_offset + 34, 1024 + n % 64000)

    def run(self, seconds: float, window: int, limit: int | None = None) -> Result:
        """New connections for ``seconds`` (or until ``limit`` completed), at most ``window``
        outstanding."""
        sent_at: deque[float] = deque()
        latencies: list[float] = []
        n = getattr(self, "_n", 0)
        done = 0
        clock = time.perf_counter

        def completed() -> None:
            nonlocal done
            if sent_at:  # else a late packet-out of something else the controller re-injected
                latencies.append((clock() - sent_at.popleft()) * 1e6)
                done += 1

        self.sock.settimeout(5)
        start = clock()
        end = start + seconds
        flow_mods_before = self.flow_mods
        while True:
            now = clock()
            if now >= end or (limit is not None and done >= limit):
                break
            batch = bytearray()
            while len(sent_at) < window and (limit is None or done + len(sent_at) < limit):
                self._client(n)
                n += 1
                self.xid += 1
                struct.pack_into("!I", self.packet_in, 4, self.xid)
                batch += self.packet_in
                sent_at.append(clock())
            if batch:
                self.sock.sendall(batch)
            self._pump(completed)
        elapsed = clock() - start
        self._n = n
        drain_until = clock() + 5  # let the outstanding ones finish so the next run starts clean
        while sent_at and clock() < drain_until:
            self._pump(lambda: sent_at.popleft())
        return Result(done, elapsed, self.flow_mods - flow_mods_before, latencies)

    def close(self) -> None:
        self.sock.close()


def main(argv: list[str] | None = None) -> int:
    """A fake switch against a running controller (``lbapp run -c topologies/worked_example.yaml``
    listens on 6653): new connections to the config's first VIP for a while, then the rate."""
    import argparse
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from lbapp.pipeline import cookies

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6653, help="the controller's OpenFlow port")
    parser.add_argument("--dpid", type=int, default=1, help="the balancer's datapath id in the config")
    parser.add_argument("--vip", default="117.78.6.19")
    parser.add_argument("--vip-port", type=int, default=80)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--window", type=int, default=64, help="new connections outstanding at most")
    args = parser.parse_args(argv)
    try:
        switch = FakeSwitch(args.host, args.port, args.dpid, cookies.make(cookies.STAGE_SESSION, vip=1), args.vip,
                            args.vip_port)
    except OSError as exc:
        print(f"error: no controller at {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        switch.handshake()
        result = switch.run(args.seconds, args.window)
    finally:
        switch.close()
    print(f"{result.completed} new connections set up in {result.seconds:.1f} s: {result.rate:.0f}/s, "
          f"latency p50 {result.percentile(50):.0f} us, p99 {result.percentile(99):.0f} us; "
          f"{result.flow_mods} flow-mods")
    return 0 if result.completed else 1


if __name__ == "__main__":
    raise SystemExit(main())
