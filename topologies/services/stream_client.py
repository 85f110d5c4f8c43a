"""A long-lived TCP client: one connection, one line every INTERVAL seconds, COUNT times; prints
each answer (``backend=... client=...``) as it comes, ``error: ...`` and exit 1 on failure.
TIMEOUT (default 10 s) bounds the wait for each answer.

    python3 stream_client.py IP PORT COUNT INTERVAL [TIMEOUT]
"""
import socket
import sys
import time


def main(ip, port, count, interval, timeout="10"):
    with socket.create_connection((ip, int(port)), timeout=float(timeout)) as sock:
        reader = sock.makefile("r")
        for i in range(int(count)):
            sock.sendall(f"line {i}\n".encode())
            line = reader.readline()
            if not line:
                print("error: connection closed", flush=True)
                return 1
            print(line.strip(), flush=True)
            time.sleep(float(interval))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(*sys.argv[1:6]))
    except OSError as exc:
        print(f"error: {exc}", flush=True)
        sys.exit(1)
