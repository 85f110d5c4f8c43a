"""Legitimate clients at a steady pace: a new connection every 1/RATE seconds for SECONDS, each
on its own thread: connect, send a line, read the answer, close, all within TIMEOUT seconds
(TCP retries a lost SYN after 1 s, then 3 s). Prints: started ok failed p50_ms p99_ms. With
LOG, each connection is written there too: its start (Unix time), 1 or 0 (answered), seconds taken.

    python3 paced_client.py IP PORT RATE SECONDS TIMEOUT [LOG]
"""
import socket
import sys
import threading
import time


def main(ip, port, rate, seconds, timeout, log=""):
    port, rate, seconds, timeout = int(port), float(rate), float(seconds), float(timeout)
    results, threads = [], []

    def one():
        started_at = time.time()
        start = time.monotonic()
        try:
            with socket.create_connection((ip, port), timeout=timeout) as s:
                s.settimeout(max(timeout - (time.monotonic() - start), 0.01))
                s.sendall(b"x\n")
                ok = bool(s.recv(256))
        except OSError:
            ok = False
        results.append((ok, time.monotonic() - start, started_at))

    began = time.monotonic()
    n = 0
    while time.monotonic() - began < seconds:
        t = threading.Thread(target=one)
        t.start()
        threads.append(t)
        n += 1
        time.sleep(max(began + n / rate - time.monotonic(), 0))
    for t in threads:
        t.join()
    if log:
        with open(log, "w") as out:
            out.writelines(f"{at:.3f} {int(ok)} {d:.3f}\n" for ok, d, at in sorted(results, key=lambda r: r[2]))
    times = sorted(d for ok, d, _ in results if ok)
    pick = (lambda q: times[min(int(q * len(times)), len(times) - 1)] * 1000) if times else (lambda q: float("nan"))
    print(len(results), sum(ok for ok, _, _ in results), sum(not ok for ok, _, _ in results), f"{pick(0.5):.1f}",
          f"{pick(0.99):.1f}")


if __name__ == "__main__":
    main(*sys.argv[1:7])
