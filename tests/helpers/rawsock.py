"""Send or capture raw Ethernet frames on an interface; run inside a namespace with
``ip netns exec NS python -m tests.helpers.rawsock ...``.

    send IFACE HEX [HEX...]          send each frame
    recv IFACE SECONDS [ETHERTYPE]   print each received frame (hex, one a line) until SECONDS pass
"""
import socket
import sys
import time


def main(argv):
    cmd, iface = argv[0], argv[1]
    if cmd == "send":
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
            s.bind((iface, 0))
            for frame in argv[2:]:
                s.send(bytes.fromhex(frame))
        return 0
    if cmd == "recv":
        seconds = float(argv[2])
        ethertype = int(argv[3], 0) if len(argv) > 3 else 0x0003  # ETH_P_ALL
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype)) as s:
            s.bind((iface, 0))
            print("ready", flush=True)
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                s.settimeout(left)
                try:
                    frame, addr = s.recvfrom(65535)
                except socket.timeout:
                    break
                if addr[2] == socket.PACKET_OUTGOING:
                    continue
                print(frame.hex(), flush=True)
        return 0
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
