"""Run inside a Mininet client: open new TCP connections to a VIP from given source addresses
and print, as JSON, what each got (the echo service's answer line, or null).

    python3 asker.py VIP PORT KIND TOGETHER SRC [SRC ...]

KIND is ``http`` (one GET) or ``line`` (one line to the stream echo). With TOGETHER=1 the
connections of each pair of sources start at the same moment (two threads, a barrier): a
client's back-to-back connections. Standard library only (Debian's python3 runs it);
:func:`backends_reached` runs it from a test."""
import json
import socket
import sys
import threading


def ask(src, vip, port, kind, timeout=5.0):
    try:
        with socket.create_connection((vip, port), timeout=timeout, source_address=(src, 0)) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n" if kind == "http" else b"hi\n")
            data = b""
            while b"backend=" not in data or not data.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        line = next((l for l in data.decode(errors="replace").splitlines() if l.startswith("backend=")), None)
        return line
    except OSError:
        return None


def backends_reached(lab, vip, sources, port=80, kind="http", together=False):
    """From a test: run this on ``lab``'s h1; the backend each source's connection reached (None: failed)."""
    import shlex

    from lbapp.lab import SYSTEM_PYTHON, parse_answer

    out = lab.net.get("h1").cmd(f"{SYSTEM_PYTHON} {__file__} {vip} {port} {kind} {int(together)} "
                                + " ".join(shlex.quote(s) for s in sources))
    return [parse_answer(a)["backend"] if a else None for a in json.loads(out.strip().splitlines()[-1])]


def main():
    vip, port, kind, together, sources = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1", sys.argv[5:]
    answers = [None] * len(sources)
    if not together:
        answers = [ask(src, vip, port, kind) for src in sources]
    else:
        for i in range(0, len(sources), 2):
            pair = sources[i:i + 2]
            barrier = threading.Barrier(len(pair))

            def run(j, src):
                barrier.wait()
                answers[i + j] = ask(src, vip, port, kind)
            threads = [threading.Thread(target=run, args=(j, src)) for j, src in enumerate(pair)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    print(json.dumps(answers))


if __name__ == "__main__":
    main()
