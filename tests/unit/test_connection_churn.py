"""Ended OpenFlow connections leave nothing behind (issue #14): thousands of switch connections
that come and go, and the controller's threads and memory stay where they were."""
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
HEADER = struct.Struct("!BBHI")
HELLO, ECHO_REQUEST, ECHO_REPLY, FEATURES_REQUEST, FEATURES_REPLY = 0, 2, 3, 5, 6
FLOW_MOD, MULTIPART_REQUEST, MULTIPART_REPLY, BARRIER_REQUEST, BARRIER_REPLY = 14, 18, 19, 20, 21
BALANCER_DPID, UNKNOWN_DPID = 1, 0x99  # tests/data/cross_vlan.yaml's balancer; a switch it does not name

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _threads_and_rss(pid: int) -> tuple[int, int]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(status["Threads"]), int(status["VmRSS"].split()[0]) * 1024


def _send(sock, msg_type: int, xid: int, body: bytes = b"") -> None:
    sock.sendall(HEADER.pack(4, msg_type, 8 + len(body), xid) + body)


def _session(port: int, kind: str, dpid: int = UNKNOWN_DPID, until: int = 0) -> dict[int, int]:
    """One connection: ``handshake`` (hello, features reply with ``dpid``, answers, closes once a
    message of type ``until`` came), ``silent`` (reads the controller's hello, closes), or
    ``garbage`` (reads the hello, sends junk, closes). Returns message counts by type."""
    counts: dict[int, int] = {}
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        buf = bytearray()
        if kind == "handshake":
            _send(sock, HELLO, 1)
        while True:
            while len(buf) >= 8 and len(buf) >= HEADER.unpack_from(buf)[2]:
                _, t, length, xid = HEADER.unpack_from(buf)
                body, buf = bytes(buf[8:length]), buf[length:]
                counts[t] = counts.get(t, 0) + 1
                if kind == "silent":
                    return counts
                if kind == "garbage":
                    sock.sendall(b"\x04\x63\x00\x09" + os.urandom(60))  # an unknown type, a short length
                    return counts
                if t == FEATURES_REQUEST:
                    _send(sock, FEATURES_REPLY, xid, struct.pack("!QIBB2xII", dpid, 0, 254, 0, 0x4F, 0))
                elif t == MULTIPART_REQUEST:
                    _send(sock, MULTIPART_REPLY, xid, struct.pack("!HH4x", struct.unpack_from("!H", body)[0], 0))
                elif t == BARRIER_REQUEST:
                    _send(sock, BARRIER_REPLY, xid)
                elif t == ECHO_REQUEST:
                    _send(sock, ECHO_REPLY, xid, body)
                if t == until:
                    return counts
            chunk = sock.recv(65536)
            if not chunk:
                return counts
            buf += chunk


def _settled(pid: int, limit: int, seconds: float = 5.0) -> int:
    """The controller's thread count once it is at most ``limit`` (teardown is asynchronous),
    or whatever it is after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        threads = _threads_and_rss(pid)[0]
        if threads <= limit or time.monotonic() > deadline:
            return threads
        time.sleep(0.1)


def test_connections_that_end_leave_no_threads_or_memory_behind():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "lbapp.cli.main", "run", "-c", "tests/data/cross_vlan.yaml",
                             "--port", str(port), "--api-port", "0"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as probe:  # a connection that ends at once: one more for the churn
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, "the controller did not start"
            time.sleep(0.1)
        _session(port, "handshake", BALANCER_DPID, until=FLOW_MOD)  # warm up: the pipeline's code paths
        threads0 = _settled(proc.pid, 0, seconds=1.0)
        rss0 = _threads_and_rss(proc.pid)[1]
        kinds = [("handshake", UNKNOWN_DPID, MULTIPART_REQUEST), ("handshake", BALANCER_DPID, FLOW_MOD),
                 ("silent", 0, 0), ("garbage", 0, 0)]
        for i in range(3000):
            kind, dpid, until = kinds[i % len(kinds)]
            _session(port, kind, dpid, until)
        threads = _settled(proc.pid, threads0 + 2)
        rss = _threads_and_rss(proc.pid)[1]
        # Before the fix: two threads (and ~45 KiB) per ended connection, for good.
        assert threads <= threads0 + 2, f"{threads - threads0} threads more after 3,000 connections"
        assert rss - rss0 < 8 << 20, f"{(rss - rss0) >> 20} MiB more after 3,000 connections"
        # and a switch that connects now still gets its pipeline
        assert _session(port, "handshake", BALANCER_DPID, until=FLOW_MOD).get(FLOW_MOD)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
