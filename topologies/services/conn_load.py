"""New-connection load: WORKERS threads each connect, send a line, read the answer and close,
for SECONDS; prints the number of completed connections and failures.

    python3 conn_load.py IP PORT SECONDS WORKERS
"""
import socket
import sys
import threading
import time


def main(ip, port, seconds, workers):
    port, seconds, workers = int(port), float(seconds), int(workers)
    done, failed = [0] * workers, [0] * workers
    end = time.monotonic() + seconds

    def worker(i):
        while time.monotonic() < end:
            try:
                with socket.create_connection((ip, port), timeout=3) as s:
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
    print(sum(done), sum(failed))


if __name__ == "__main__":
    main(*sys.argv[1:5])
