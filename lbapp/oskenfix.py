"""A fix lbapp carries for os-ken 4's native-thread hub: every ended OpenFlow connection left
its two threads (and its Datapath) behind for good.

os-ken serves a connection on the thread the listener spawned for it:
``Datapath.serve`` starts a send thread, runs the receive loop, and when that loop ends
(switch gone, reset, unparsable bytes) "kills" the send thread and joins it. With the eventlet
hub the kill ends the green thread; the native hub's ``kill`` does nothing, and the send thread
sits in ``send_q.get()`` until something is queued, so the join never returns: the connection's
thread and its send thread stay, ``Datapath.close`` is never reached, and the apps never see
the connection's DEAD_DISPATCHER state change.

:func:`apply` makes the end of the receive loop wake the send loop with os-ken's own "send this,
then stop" item (``close_socket=True``; the socket is already closed, so nothing is written),
so the join returns and os-ken's normal teardown runs. Idempotent, and harmless on an os-ken
that ends its send thread itself.
"""
from __future__ import annotations

import functools
import logging
import queue

LOG = logging.getLogger("lbapp")

_STOP = (b"", True)  # (buf, close_socket) as Datapath.send queues it: the send loop's last item


def wake_send_loop(datapath) -> None:
    """Queue the send loop's last item without ever blocking: a permit of the queue's
    semaphore is taken first, as ``Datapath.send`` does, so the put cannot find it full and
    the send loop's release stays balanced. No permit means a full queue: the send loop is
    not waiting then, and its next write, on the closed socket, fails and ends it."""
    q, permits = getattr(datapath, "send_q", None), getattr(datapath, "_send_q_sem", None)
    if q is None or permits is None or not permits.acquire(blocking=False):
        return
    try:
        q.put_nowait(_STOP)
    except queue.Full:  # cannot happen while every put holds a permit; never block the caller
        permits.release()


def apply() -> None:
    from os_ken.base import app_manager  # noqa: F401 - first: it imports the controller module, which imports it back
    from os_ken.controller import controller
    from os_ken.lib import hub

    if hub.HUB_TYPE != "native" or getattr(controller.Datapath._recv_loop, "_lbapp_wakes_send_loop", False):
        return
    recv_loop = controller.Datapath._recv_loop

    @functools.wraps(recv_loop)
    def _recv_loop(self):
        try:
            recv_loop(self)
        finally:
            wake_send_loop(self)

    _recv_loop._lbapp_wakes_send_loop = True
    controller.Datapath._recv_loop = _recv_loop
    LOG.debug("os-ken: the send thread of an ended OpenFlow connection is woken to end")
