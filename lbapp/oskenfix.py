"""What lbapp changes in os-ken 4's native-thread hub: two fixes, and two shortcuts of the
controller path that issue 15 measured.

**Ended connections end their threads.** Every ended OpenFlow connection left its two threads
(and its Datapath) behind for good.

os-ken serves a connection on the thread the listener spawned for it:
``Datapath.serve`` starts a send thread, runs the receive loop, and when that loop ends
(switch gone, reset, unparsable bytes) "kills" the send thread and joins it. With the eventlet
hub the kill ends the green thread; the native hub's ``kill`` does nothing, and the send thread
sits in ``send_q.get()`` until something is queued, so the join never returns: the connection's
thread and its send thread stay, ``Datapath.close`` is never reached, and the apps never see
the connection's DEAD_DISPATCHER state change.

:func:`apply` makes the end of the receive loop wake the send loop with os-ken's own "send this,
then stop" item (``close_socket=True``; the socket is already closed, so nothing is written),
so the join returns and os-ken's normal teardown runs.

**Writes from the caller's thread.** ``Datapath.send`` queued each write for the connection's
send thread; waking that thread cost about 80 us per reply, as much as lbapp's whole pick. It
now writes at once, without blocking, under a lock per connection, so writers from any thread
keep their order and never interleave. What the socket does not take waits, in order, for the
connection's send thread, and later writes wait behind it: a switch that stops reading never
holds up the caller (the app's lock, and with it every other switch). Its connection ends when
more than :data:`WAITING_LIMIT` bytes wait for it or when it takes nothing for os-ken's
``socket_timeout``, as a failed write ends it. (A TLS connection is written whole, blocking up
to ``socket_timeout``, as os-ken's send thread did.)

**Messages taken raw.** :func:`take_raw` gives messages of one type to a handler before
os-ken parses them (parsing a packet-in into its objects cost about 70 us); a handler that
declines leaves the message to os-ken as before.

**Malformed messages in one line.** os-ken logs a message from a switch that it cannot parse
with a traceback and the whole message in hex (a hostile switch's bytes, up to 64 KiB on a
line); that record becomes one line naming the message and what was wrong with it.

Idempotent, and harmless on an os-ken that ends its send thread itself.
"""
from __future__ import annotations

import collections
import functools
import logging
import os
import queue
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

LOG = logging.getLogger("lbapp")

_STOP = (b"", True)  # (buf, close_socket) as Datapath.send queues it: the send loop's last item
_WAKE = (b"", False)  # lbapp's send loop: writes wait for you
WAITING_LIMIT = 32 << 20  # bytes that may wait for a switch to read them; past it, it is not reading


def wake_send_loop(datapath, item: tuple[bytes, bool] = _STOP) -> None:
    """Queue the send loop's last item (or ``item``) without ever blocking: a permit of the
    queue's semaphore is taken first, as ``Datapath.send`` does, so the put cannot find it full
    and the send loop's release stays balanced. (lbapp's send loop has at most one wake-up
    queued, so its last item always finds a permit; os-ken's, with no permit left, is not
    waiting, and its next write, on the closed socket, fails and ends it.)"""
    q, permits = getattr(datapath, "send_q", None), getattr(datapath, "_send_q_sem", None)
    if q is None or permits is None or not permits.acquire(blocking=False):
        return
    try:
        q.put_nowait(item)
    except queue.Full:  # cannot happen while every put holds a permit; never block the caller
        permits.release()


# (OpenFlow version, message type) -> handler(datapath, message bytes) -> True if it took it
_RAW: dict[tuple[int, int], Callable[[Any, bytearray], bool]] = {}


def take_raw(version: int, msg_type: int, handler: Callable[[Any, bytearray], bool] | None) -> None:
    """Give the messages of ``msg_type`` in OpenFlow ``version`` to ``handler(datapath, buf)``
    on the connection's receive thread, before os-ken parses them: it returns True when it took
    the message (os-ken then drops it), False to leave it to os-ken's parser and events. It
    must not raise. ``None`` stops taking them. Needs :func:`apply`."""
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
    """The socket lbapp writes through: a duplicate of the connection's, closed only by the
    connection's send loop, so no write lands on a descriptor number that os-ken's teardown
    closed and a new connection reused. None for TLS, or a socket os-ken made blocking (no
    ``socket_timeout``): written whole, blocking, as os-ken's send thread wrote."""
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
    """A write failed, or the switch does not read: no more writes, and the connection ends
    (a partial write leaves the stream unusable; the receive loop ends on the shutdown). Under
    the write lock."""
    from os_ken.controller.handler import DEAD_DISPATCHER

    if self._lbapp_writes_ended:
        return
    self._lbapp_writes_ended = True
    if self.socket.fileno() < 0 or self.state == DEAD_DISPATCHER:  # os-ken closed it: nothing to report
        return
    LOG.warning("switch at %s: %s; closing its connection", self.address, why)
    try:
        self.socket.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _write(self, buf, close_socket: bool = False) -> bool:
    """``Datapath.send``: written at once from the caller's thread, without blocking, unless
    earlier writes wait; what waits goes to :func:`_send_loop`. False when the connection is
    ending, or ends now (a failed write, or over :data:`WAITING_LIMIT` bytes waiting)."""
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
        if self._lbapp_waiting_bytes + len(buf) > WAITING_LIMIT:
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


def apply() -> None:
    from os_ken.base import app_manager  # noqa: F401 - first: it imports the controller module, which imports it back
    from os_ken.controller import controller
    from os_ken.lib import hub
    from os_ken.ofproto import ofproto_parser

    if hub.HUB_TYPE != "native" or getattr(controller.Datapath._recv_loop, "_lbapp_wakes_send_loop", False):
        return
    init = controller.Datapath.__init__

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        self._lbapp_write_lock = threading.Lock()  # first: __init__ may send
        self._lbapp_writes_ended = False
        self._lbapp_waiting: collections.deque = collections.deque()  # (bytes, close_socket), in order
        self._lbapp_waiting_bytes = 0
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
