"""What lbapp changes in os-ken (lbapp.oskenfix): an OpenFlow connection that ends ends its
threads; writes go out from the caller's thread, whole and in order; messages taken raw skip
os-ken's parser. os-ken's own connection handler on a loopback TCP pair, no controller process."""
import socket
import struct
import threading
import time

from os_ken.base import app_manager  # noqa: F401 - first: os-ken's controller module imports it back
from os_ken.controller import controller

from lbapp import oskenfix

HELLO_13 = b"\x04\x00\x00\x08\x00\x00\x00\x01"
HEADER_13 = struct.Struct("!BBHI")


def _connection(then) -> threading.Thread:
    """os-ken serves one connection on a thread, as its listener does; the switch's side reads
    the controller's hello, does ``then(sock)`` and hangs up. Returns the serving thread once
    it ended, or after 3 s."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        switch = socket.create_connection(listener.getsockname(), timeout=3)
        ours, address = listener.accept()
    thread = threading.Thread(target=controller.datapath_connection_factory, args=(ours, address), daemon=True)
    thread.start()
    with switch:
        assert switch.recv(8)[1] == 0  # the hello: the send thread is up, then waits
        then(switch)
    thread.join(timeout=3)
    return thread


def test_the_serving_thread_and_its_send_thread_end_when_the_switch_goes():
    oskenfix.apply()
    before = threading.active_count()
    assert not _connection(lambda sock: None).is_alive()  # hangs up at once
    assert not _connection(lambda sock: sock.sendall(HELLO_13)).is_alive()  # after its hello
    assert threading.active_count() <= before


def test_apply_is_idempotent():
    oskenfix.apply()
    patched = controller.Datapath._recv_loop
    oskenfix.apply()
    assert controller.Datapath._recv_loop is patched


class _Brick:
    """os-ken's event brick, as a Datapath uses it: the events it would hand to the apps."""

    def __init__(self) -> None:
        self.events = []

    def send_event_to_observers(self, ev, state=None) -> None:
        self.events.append(ev)

    def get_handlers(self, ev, state=None) -> list:
        return []


def _served(read_timeout: float = 3):
    """An os-ken Datapath serving one end of a loopback TCP pair on its own thread (events to a
    recording brick); the other end, the switch's, with its hello read. Returns (datapath,
    switch socket, serving thread)."""
    oskenfix.apply()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        switch = socket.create_connection(listener.getsockname(), timeout=read_timeout)
        ours, address = listener.accept()
    dp = controller.Datapath(ours, address)
    brick = dp.ofp_brick = _Brick()
    thread = threading.Thread(target=dp.serve, daemon=True)
    thread.start()
    assert switch.recv(8)[1] == 0  # the hello
    return dp, switch, thread, brick


def _echoes(brick: _Brick) -> list[int]:
    """The xids of the echo requests os-ken parsed into events."""
    return [ev.msg.xid for ev in brick.events if type(ev).__name__ == "EventOFPEchoRequest"]


def _read(sock: socket.socket, size: int) -> bytes:
    buf = b""
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        assert chunk, "the connection ended early"
        buf += chunk
    return buf


def test_writes_from_many_threads_arrive_whole_and_each_threads_in_order():
    dp, switch, thread, _ = _served()
    per_thread, writers = 300, 4

    refused = []

    def write(n):  # echo requests: 8-byte header, the xid says who and which, a body of 1000 bytes
        for i in range(per_thread):
            body = bytes([n]) * 1000
            if not dp.send(struct.pack("!BBHI", 4, 2, 8 + len(body), n << 16 | i) + body):
                refused.append((n, i))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    seen = {n: [] for n in range(writers)}
    for _ in range(per_thread * writers):
        version, kind, length, xid = struct.unpack("!BBHI", _read(switch, 8))
        body = _read(switch, length - 8)
        assert body == bytes([xid >> 16]) * 1000  # never interleaved with another thread's bytes
        seen[xid >> 16].append(xid & 0xFFFF)
    for t in threads:
        t.join()
    assert not refused
    assert all(order == list(range(per_thread)) for order in seen.values())
    switch.close()
    thread.join(timeout=3)
    assert not thread.is_alive()


BIG = struct.pack("!BBHI", 4, 2, 65535, 1) + bytes(65535 - 8)  # an echo request of 64 KiB


def _timed_sends(dp, count: int) -> tuple[list[bool], float]:
    """``count`` big writes: what each returned, and the longest one took (s)."""
    results, longest = [], 0.0
    for _ in range(count):
        started = time.monotonic()
        results.append(dp.send(BIG))
        longest = max(longest, time.monotonic() - started)
    return results, longest


def test_a_switch_that_stops_reading_never_blocks_the_writer_and_loses_its_connection(monkeypatch):
    monkeypatch.setattr(oskenfix, "WAITING_LIMIT", 4 << 20)
    dp, switch, thread, _ = _served()
    results, longest = _timed_sends(dp, 200)  # 12.5 MiB: far more than the socket buffers and the limit
    assert results[0] and results[-1] is False  # it ended once 4 MiB waited
    assert longest < 0.5  # no write waited for the switch
    thread.join(timeout=3)  # the connection ended: os-ken's teardown ran
    assert not thread.is_alive()
    switch.close()


def test_a_switch_that_takes_nothing_for_the_socket_timeout_loses_its_connection():
    controller.CONF.set_override("socket_timeout", 0.3)  # os-ken's, shortened
    try:
        dp, switch, thread, _ = _served()
    finally:
        controller.CONF.clear_override("socket_timeout")
    results, longest = _timed_sends(dp, 80)  # 5 MiB: more than the socket buffers, under the limit
    assert all(results) and longest < 0.5
    thread.join(timeout=3)  # the send thread's write timed out: the connection ended
    assert not thread.is_alive()
    assert dp.send(BIG) is False
    switch.close()


def test_a_switch_that_stops_reading_does_not_hold_up_writes_to_another():
    stalled, stalled_switch, stalled_thread, _ = _served()
    healthy, healthy_switch, healthy_thread, _ = _served()
    got = []

    def read_all():
        while len(got) < 200:
            got.append(HEADER_13.unpack(_read(healthy_switch, 8))[3])
            _read(healthy_switch, 65535 - 8)

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    started = time.monotonic()
    for i in range(200):  # 12.5 MiB each, more than loopback's socket buffers hold; one writer, as the
        # app's lock makes it, turns between the two switches
        stalled.send(BIG)
        healthy.send(struct.pack("!BBHI", 4, 2, 65535, i) + bytes(65535 - 8))
    reader.join(timeout=10)
    assert got == list(range(200))
    assert time.monotonic() - started < 3  # a write waiting for the stalled switch would cost 5 s
    for sock, thread in ((stalled_switch, stalled_thread), (healthy_switch, healthy_thread)):
        sock.close()
        thread.join(timeout=3)
        assert not thread.is_alive()


def test_a_message_taken_raw_skips_os_kens_parser_and_one_declined_reaches_it():
    taken = []
    oskenfix.take_raw(4, 2, lambda dp, buf: taken.append(bytes(buf)) or buf[4:8] == b"\0\0\0\1")
    try:
        dp, switch, thread, brick = _served()
        switch.sendall(HELLO_13)
        for xid in (1, 2):  # echo requests: the first taken, the second declined
            switch.sendall(struct.pack("!BBHI", 4, 2, 12, xid) + b"ping")
        deadline = time.monotonic() + 3
        while len(taken) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert taken == [struct.pack("!BBHI", 4, 2, 12, xid) + b"ping" for xid in (1, 2)]
        while not _echoes(brick) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _echoes(brick) == [2]
    finally:
        oskenfix.take_raw(4, 2, None)
        switch.close()
    thread.join(timeout=3)
    assert not thread.is_alive()


def test_a_raw_handler_that_fails_leaves_the_message_to_os_ken_and_the_connection_up():
    def broken(dp, buf):
        raise RuntimeError("a bug")

    oskenfix.take_raw(4, 2, broken)
    try:
        dp, switch, thread, brick = _served()
        switch.sendall(HELLO_13 + struct.pack("!BBHI", 4, 2, 12, 5) + b"ping")
        deadline = time.monotonic() + 3
        while not _echoes(brick) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _echoes(brick) == [5]
        assert thread.is_alive()
    finally:
        oskenfix.take_raw(4, 2, None)
        switch.close()
    thread.join(timeout=3)
    assert not thread.is_alive()


# --- the start-up check of os-ken's internals ---

def test_the_check_passes_on_the_os_ken_setup_cfg_allows_and_after_apply():
    oskenfix.check()
    oskenfix.apply()
    oskenfix.check()  # lbapp's own wrappers are seen through


def test_an_os_ken_lacking_an_internal_is_named(monkeypatch):
    import pytest

    monkeypatch.delattr(controller.Datapath, "_close_write")
    with pytest.raises(oskenfix.OsKenMismatch, match=r"lacks Datapath\._close_write, which lbapp relies on"):
        oskenfix.check()


def test_lbapp_run_on_an_os_ken_lacking_an_internal_stops_with_one_line():
    """The whole command: one line naming the internal and exit 1, never a silent fallback."""
    import subprocess
    import sys

    program = ("import sys; from os_ken.base import app_manager; from os_ken.controller import controller; "
               "controller.Datapath._send_loop = None; "
               "from lbapp.cli.main import main; sys.exit(main(sys.argv[1:]))")
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # free once closed
    done = subprocess.run([sys.executable, "-c", program, "run", "-c", "topologies/worked_example.yaml",
                           "--listen", "127.0.0.1", "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "lacks Datapath._send_loop" in lines[0], done.stderr


def test_one_write_larger_than_the_limit_is_taken_whole_and_the_limit_counts_beyond_it(monkeypatch):
    """A 10,000-VIP pipeline is one write of 200 MB: before, past the 32 MiB limit, the
    controller closed the connection of a switch that was reading it."""
    monkeypatch.setattr(oskenfix, "WAITING_LIMIT", 1 << 20)
    dp, switch, thread, _ = _served()
    pipeline = b"".join([BIG] * 256)  # 16 MiB in one write: more than the socket buffers take
    assert dp.send(pipeline)
    assert dp.send(BIG)  # a little more while it waits: within the limit beyond it
    assert _read(switch, len(pipeline)) == pipeline and _read(switch, len(BIG)) == BIG
    results, _ = _timed_sends(dp, 400)  # then it stops reading: 25 MiB of 64 KiB writes
    assert results[0] and results[-1] is False
    thread.join(timeout=3)
    assert not thread.is_alive()
    switch.close()
