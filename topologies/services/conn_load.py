"""New-connection load: WORKERS threads each connect, send a line, read the answer and close,
for SECONDS; prints the number of completed connections, failures, and the median time to
connect (the handshake, in ms).

    python3 conn_load.py IP PORT SECONDS WORKERS
"""
import socket
import sys
import threading
import time


def main(ip, port, seconds, workers):
    port, seconds, workers = int(port), float(seconds), int(workers)
    done, failed = [0] * workers, [0] * workers
    connect_s = [[] for _ in range(workers)]
    end = time.monotonic() + seconds

    def worker(i):
        while time.monotonic() < end:
            try:
                started = time.perf_counter()
                with socket.create_connection((ip, port), timeout=3) as s:
                    connect_s[i].append(time.perf_counter() - started)
                    s.sendall(b"x\n")
                    if s.recv(256):
                        done[i] += 1
                    else:
                        failed[i] += 1
            except OSError:
                failed[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    times = sorted(t for per_worker in connect_s for t in per_worker)
    print(sum(done), sum(failed), f"{times[len(times) // 2] * 1000:.3f}" if times else "nan")


if __name__ == "__main__":
    main(*sys.argv[1:5])
