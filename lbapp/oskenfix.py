"""Everything lbapp does to, or reads from, os-ken's private internals: nothing else in lbapp
touches them. :func:`check` verifies at start-up that each internal relied on is there (an
os-ken without one stops lbapp with one line naming it, never a silent fallback); setup.cfg pins
the os-ken versions this was tested with. What :func:`apply` changes (idempotent):

- **Ended connections end their threads.** ``Datapath.serve`` runs the receive loop, then
  "kills" the send thread and joins it; the native hub's ``kill`` does nothing, and the send
  thread sits in ``send_q.get()``, so the join never returned: each ended connection kept its
  threads and Datapath, and apps never saw its DEAD_DISPATCHER. The end of the receive loop now
  queues os-ken's own "send this, then stop" item, so the join returns and the teardown runs.
- **Writes from the caller's thread** (waking os-ken's send thread cost ~80 us per reply, as much
  as lbapp's whole pick): written at once, without blocking, under a lock per connection, so
  writers keep their order. What the socket does not take waits, in order, for the send thread;
  a switch that stops reading never holds up the caller, and loses its connection past
  :data:`WAITING_LIMIT` bytes waiting beyond the write that began the wait (taken whole: a
  10,000-VIP pipeline is 200 MB) or ``socket_timeout`` without progress. (TLS is written
  whole, blocking, as os-ken did.)
- **Messages taken raw** (:func:`take_raw`) before os-ken parses them (~70 us a packet-in); a
  handler that declines leaves the message to os-ken.
- **Malformed messages in one line**, instead of a traceback and up to 64 KiB of hex.

And the hooks the app uses: :func:`intercept_events` (events on the receive thread, before they
queue), :func:`watchers`, :func:`more_to_read`, :func:`peer`.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import inspect
import logging
import os
import queue
import select
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

from lbapp.environment import EnvironmentProblem

LOG = logging.getLogger("lbapp")

_STOP = (b"", True)  # (buf, close_socket) as Datapath.send queues it: the send loop's last item
_WAKE = (b"", False)  # lbapp's send loop: writes wait for you
WAITING_LIMIT = 32 << 20  # bytes that may wait for a switch to read them; past it, it is not reading


def wake_send_loop(datapath, item: tuple[bytes, bool] = _STOP) -> None:
    """Queue the send loop's last item (or ``item``) without blocking: a permit of the queue's
    semaphore first, as ``Datapath.send`` takes (lbapp queues one wake-up at most: it finds one)."""
    q, permits = datapath.send_q, datapath._send_q_sem
    if q is None or not permits.acquire(blocking=False):  # None: the send loop has ended
        return
    try:
        q.put_nowait(item)
    except queue.Full:  # cannot happen while every put holds a permit; never block the caller
        permits.release()


# (OpenFlow version, message type) -> handler(datapath, message bytes) -> True if it took it
_RAW: dict[tuple[int, int], Callable[[Any, bytearray], bool]] = {}


def take_raw(version: int, msg_type: int, handler: Callable[[Any, bytearray], bool] | None) -> None:
    """Give messages of ``msg_type`` in OpenFlow ``version`` to ``handler(datapath, buf)`` before
    os-ken parses them: True when it took one, False to leave it to os-ken (``None``: stop)."""
    if handler is None:
        _RAW.pop((version, msg_type), None)
    else:
        _RAW[(version, msg_type)] = handler


class _OneLineParseErrors(logging.Filter):
    """os-ken's record of a message it could not parse, as one line (see the module's doc)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith("Encountered an error while parsing"):
            version, msg_type, msg_len = record.args[:3]
            error = record.exc_info[1]
            record.msg = "ignored a malformed OpenFlow message from a switch (version %#04x, type %d, %d bytes): %s: %s"
            record.args = (version, msg_type, msg_len, type(error).__name__, error)
            record.exc_info, record.exc_text = None, None
        return True


def _writer_socket(sock) -> socket.socket | None:
    """The socket lbapp writes through: a duplicate of the connection's that only its send loop
    closes (no write lands on a number os-ken's teardown closed and a new connection reused).
    None for TLS or a blocking socket: written whole, blocking, as os-ken's send thread wrote."""
    if isinstance(sock, ssl.SSLSocket) or sock.gettimeout() is None:
        return None
    out = socket.socket(fileno=os.dup(sock.fileno()))
    out.settimeout(sock.gettimeout())
    return out


def _write_now(self, buf) -> int:
    """Write what the socket takes now; how much."""
    out = self._lbapp_out
    if out is None:
        self.socket.sendall(buf)
        return len(buf)
    try:
        return os.write(out.fileno(), buf)  # its descriptor is non-blocking (a socket timeout)
    except BlockingIOError:
        return 0


def _end(self, why) -> None:
    """A write failed, or the switch does not read: no more writes, and the connection ends (a
    partial write leaves the stream unusable; the receive loop ends on the shutdown). Locked."""
    from os_ken.controller.handler import DEAD_DISPATCHER

    if self._lbapp_writes_ended:
        return
    self._lbapp_writes_ended = True
    if self.socket.fileno() < 0 or self.state == DEAD_DISPATCHER:  # os-ken closed it: nothing to report
        return
    LOG.warning("switch at %s: %s; closing its connection", self.address, why)
    with contextlib.suppress(OSError):
        self.socket.shutdown(socket.SHUT_RDWR)


def _write(self, buf, close_socket: bool = False) -> bool:
    """``Datapath.send``: written at once, without blocking, unless earlier writes wait (then to
    :func:`_send_loop`). False when the connection is ending, or ends now (failed, or too much waits)."""
    with self._lbapp_write_lock:
        if self._lbapp_writes_ended or self._lbapp_closing or self.send_q is None or self.socket.fileno() < 0:
            return False  # it is going
        waiting = self._lbapp_waiting
        if not waiting:
            try:
                sent = _write_now(self, buf)
            except OSError as exc:  # socket.timeout and ssl.SSLError included
                _end(self, f"write failed ({exc})")
                return False
            if sent == len(buf):
                if close_socket:  # os-ken's last word (a failed hello): nothing more goes out
                    self._lbapp_writes_ended = True
                    self._close_write()
                return True
            buf = bytes(buf[sent:])
            self._lbapp_first_waiting = len(buf)  # taken whole, however large: the limit is beyond it
        if self._lbapp_waiting_bytes + len(buf) > WAITING_LIMIT + self._lbapp_first_waiting:
            _end(self, f"not reading ({self._lbapp_waiting_bytes + len(buf)} bytes would wait for it)")
            return False
        waiting.append((buf, close_socket))
        self._lbapp_waiting_bytes += len(buf)
        self._lbapp_closing = close_socket
        if not self._lbapp_woken:  # one wake-up at a time: the last item always finds room
            self._lbapp_woken = True
            wake_send_loop(self, _WAKE)
    return True


def _send_loop(self) -> None:
    """The connection's send thread: writes what waits, in order, blocking up to os-ken's
    ``socket_timeout`` per write; ends with the receive loop (its last item) or a failed write."""
    lock, waiting = self._lbapp_write_lock, self._lbapp_waiting
    try:
        while not self.send_q.get()[1] and self.socket.fileno() >= 0:
            self._send_q_sem.release()
            with lock:
                self._lbapp_woken = False  # what is queued from now on needs a new wake-up
            while True:
                with lock:
                    if not waiting or self._lbapp_writes_ended:
                        break
                    buf, close_socket = waiting[0]  # stays first: writers queue behind it meanwhile
                try:
                    self._lbapp_out.sendall(buf)  # only what _write_now left waits: never TLS
                except OSError as exc:
                    with lock:
                        _end(self, f"write failed ({exc or type(exc).__name__})")
                    return
                with lock:
                    waiting.popleft()
                    self._lbapp_waiting_bytes -= len(buf)
                    if close_socket:
                        self._lbapp_writes_ended = True
                        self._close_write()
    finally:
        with lock:
            self.send_q = None  # as os-ken's send loop: the echo loop and later writes stop
            self._lbapp_writes_ended = True
            if self._lbapp_out is not None:
                self._lbapp_out.close()
                self._lbapp_out = None
        self._close_write()


class OsKenMismatch(EnvironmentProblem):
    """The installed os-ken lacks an internal lbapp relies on."""


def _code_names(function, depth: int = 3) -> set[str]:
    """The names a function's code uses, looking through wrappers: ours (``__wrapped__``) and
    decorators without it (functions in its closure, as os-ken's ``_deactivate``)."""
    function = inspect.unwrap(function) if function is not None else None
    if getattr(function, "__code__", None) is None:
        return set()
    inner = [v for v in inspect.getclosurevars(function).nonlocals.values() if inspect.isfunction(v)] if depth else []
    return set(function.__code__.co_names).union(*(_code_names(f, depth - 1) for f in inner))


def _params(function) -> list[str]:
    return list(inspect.signature(inspect.unwrap(function)).parameters) if callable(function) else []


def _internals() -> list[tuple[str, bool]]:
    """Each internal of os-ken lbapp relies on, and whether this os-ken has it."""
    from os_ken.base import app_manager
    from os_ken.controller import controller
    from os_ken.lib import hub
    from os_ken.ofproto import ofproto_parser

    dp, app, parse = controller.Datapath, app_manager.OSKenApp, getattr(ofproto_parser, "msg", None)
    consts = getattr(inspect.unwrap(parse), "__code__", None)
    return [
        ("the native hub (OSKEN_HUB_TYPE=native)", getattr(hub, "HUB_TYPE", None) == "native"),
        ("Datapath.__init__ setting socket, address, send_q and _send_q_sem",
         {"socket", "address", "send_q", "_send_q_sem"} <= _code_names(dp.__init__)),
        ("Datapath.serve running _recv_loop and spawning _send_loop",
         {"_recv_loop", "_send_loop"} <= _code_names(getattr(dp, "serve", None))),
        ("Datapath._recv_loop parsing with ofproto_parser.msg",
         {"ofproto_parser", "msg"} <= _code_names(getattr(dp, "_recv_loop", None))),
        ("Datapath._send_loop", callable(getattr(dp, "_send_loop", None))),
        ("Datapath._close_write", callable(getattr(dp, "_close_write", None))),
        ("Datapath.send(buf, close_socket)", _params(getattr(dp, "send", None))[:3] == ["self", "buf", "close_socket"]),
        ("ofproto_parser.msg(datapath, version, msg_type, msg_len, xid, buf)",
         _params(parse) == ["datapath", "version", "msg_type", "msg_len", "xid", "buf"]),
        ("ofproto_parser.msg's record 'Encountered an error while parsing'",
         any(str(c).startswith("Encountered an error while parsing") for c in (consts.co_consts if consts else ()))),
        ("OSKenApp._send_event(ev, state)", _params(getattr(app, "_send_event", None)) == ["self", "ev", "state"]),
        ("OSKenApp.observers (set in OSKenApp.__init__)", "observers" in _code_names(app.__init__)),
        ("app_manager.lookup_service_brick", callable(getattr(app_manager, "lookup_service_brick", None))),
    ]


def check() -> None:
    """Raise :class:`OsKenMismatch` naming the first internal this os-ken lacks."""
    from importlib.metadata import version

    for name in [name for name, present in _internals() if not present][:1]:
        raise OsKenMismatch(f"os-ken {version('os-ken')} lacks {name}, which lbapp relies on (lbapp/oskenfix.py; "
                            "tested with the versions setup.cfg allows)")


def apply() -> None:
    """Check os-ken (:func:`check`), then change it as the module's doc says. Idempotent."""
    check()
    from os_ken.controller import controller
    from os_ken.ofproto import ofproto_parser

    if getattr(controller.Datapath._recv_loop, "_lbapp_wakes_send_loop", False):
        return
    init = controller.Datapath.__init__

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        self._lbapp_write_lock = threading.Lock()  # first: __init__ may send
        self._lbapp_writes_ended = False
        self._lbapp_waiting: collections.deque = collections.deque()  # (bytes, close_socket), in order
        self._lbapp_waiting_bytes = self._lbapp_first_waiting = 0
        self._lbapp_woken = False  # a wake-up for the send loop is queued
        self._lbapp_closing = False  # os-ken's last word waits: nothing more is taken
        self._lbapp_out = None  # until __init__ set the socket's timeout
        init(self, *args, **kwargs)
        self._lbapp_out = _writer_socket(self.socket)

    controller.Datapath.__init__ = __init__
    controller.Datapath.send = _write
    controller.Datapath._send_loop = _send_loop
    parse = ofproto_parser.msg

    @functools.wraps(parse)
    def msg(datapath, version, msg_type, msg_len, xid, buf):
        handler = _RAW.get((version, msg_type))
        if handler is not None:
            try:
                if handler(datapath, buf):
                    return None  # taken: os-ken's receive loop skips a message that parsed to None
            except Exception:  # a bug, not the switch's: never end its connection for it
                LOG.exception("the raw handler of message type %d failed; os-ken parses it", msg_type)
        return parse(datapath, version, msg_type, msg_len, xid, buf)

    ofproto_parser.msg = msg
    logging.getLogger(ofproto_parser.__name__).addFilter(_OneLineParseErrors())
    recv_loop = controller.Datapath._recv_loop

    @functools.wraps(recv_loop)
    def _recv_loop(self):
        try:
            recv_loop(self)
        finally:
            wake_send_loop(self)

    _recv_loop._lbapp_wakes_send_loop = True
    controller.Datapath._recv_loop = _recv_loop
    LOG.debug("os-ken: writes from the caller's thread; raw messages taken; malformed ones in one line; "
              "ended connections' threads end")


# --- hooks for the app ---

def intercept_events(app, first: Callable[[Any, Any], bool]) -> None:
    """Show each event os-ken hands ``app`` to ``first(ev, state)`` on the thread that raised it
    (a switch's receive thread) before it queues; True from ``first``: handled, not queued."""
    queue_it = app._send_event

    def _send_event(ev, state):
        if not first(ev, state):
            queue_it(ev, state)
    app._send_event = _send_event


def watchers(ev_cls: type) -> set[str]:
    """The apps that watch ``ev_cls`` events of os-ken's OpenFlow handler."""
    from os_ken.base import app_manager

    brick = app_manager.lookup_service_brick("ofp_event")
    return set(brick.observers.get(ev_cls, ())) if brick is not None else set()


def more_to_read(dp) -> bool:
    """Whether more of the switch's bytes wait on its socket (a burst of packet-ins); never blocks."""
    sock = dp.socket
    try:
        if getattr(sock, "pending", None) and sock.pending():  # TLS: already decrypted, not yet read
            return True
        poller = getattr(dp, "_lbapp_poller", None)
        if poller is None:  # one per connection, registered once
            poller = dp._lbapp_poller = select.poll()
            poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError, TypeError):  # a closed socket: send at once
        return False


def peer(dp) -> str:
    """``host:port`` of a connection's far end."""
    return f"{dp.address[0]}:{dp.address[1]}" if dp.address else "?"


def hang_up(dp) -> None:
    """End a connection: its receive loop ends, and os-ken's teardown runs (DEAD_DISPATCHER)."""
    with contextlib.suppress(OSError):
        dp.socket.shutdown(socket.SHUT_RDWR)
