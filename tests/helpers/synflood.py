"""Send COUNT TCP SYNs to a VIP from distinct (source IP, port) pairs at about RATE per second;
run inside a namespace: python -m tests.helpers.synflood IFACE SRC_MAC DST_MAC VIP PORT COUNT RATE"""
import socket
import struct
import sys
import time


def _checksum(data: bytes) -> int:
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def main(iface, src_mac, dst_mac, vip, port, count, rate):
    port, count, rate = int(port), int(count), float(rate)
    eth = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", "")) + b"\x08\x00"
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((iface, 0))
        start = time.monotonic()
        for n in range(count):
            src = socket.inet_aton(f"200.{1 + n // 64000 // 256}.{(n // 64000) % 256}.{1 + n % 250}")
            sport = 1024 + (n // 250) % 64000
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, n & 0xFFFF, 0, 64, 6, 0, src, socket.inet_aton(vip))
            ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
            tcp = struct.pack("!HHIIBBHHH", sport, port, 1, 0, 5 << 4, 0x02, 1024, 0, 0)
            s.send(eth + ip + tcp)
            ahead = (n + 1) / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)


if __name__ == "__main__":
    main(*sys.argv[1:8])
