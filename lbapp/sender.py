"""The send policy: what the logic returns, held, merged and bundled on its way to the switches.

Each entry point of :class:`lbapp.service.Balancer` returns a list of ``(dpid, message)``; a
message is a pre-serialised :class:`~lbapp.pipeline.fastpath.RawMessage` (the hot path) or an
os-ken parser message. :class:`Sender` writes them through each switch's datapath object:
``send(bytes)`` for raw runs, ``send_msg(msg)`` for parser messages. It takes no lock (the app
calls it under its own) and needs no os-ken runtime, so it is unit-tested with a fake datapath.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Union

from lbapp.pipeline import bundles
from lbapp.pipeline.fastpath import RawMessage

LOG = logging.getLogger("lbapp")

Out = tuple[int, Any]  # as lbapp.service.Out: (dpid, message)


class Sender:
    """The one sender. ``datapaths`` maps a dpid to its connected datapath (a mapping, read at
    each send, so switches may come and go), or is a callable ``dpid -> datapath or None``.

    ``burst``: replies held back at most while more events wait (1: send each at once).
    ``bundle_min``: raw messages in one write from which it goes as an ONF bundle (0: never).
    ``setup_latency``: told, for each new connection's replies, the time from its packet-in's
    arrival (``started``, a ``time.perf_counter()`` reading) to their sending.
    """

    def __init__(self, datapaths: Union[Mapping[int, Any], Callable[[int], Any]],
                 burst: int = 256, bundle_min: int = bundles.BUNDLE_MIN_DEFAULT,
                 setup_latency: Callable[[float], None] | None = None) -> None:
        self._datapath = datapaths.get if isinstance(datapaths, Mapping) else datapaths
        self.burst = burst
        self.bundle_min = bundle_min
        self.pending: list[Out] = []  # hot-path replies held while more packet-ins wait
        self.bundle_id = 0
        self._observe = setup_latency
        self._started: list[float] = []  # arrival times of the held replies' packet-ins

    def add(self, out: list[Out], more_waiting: bool = False, started: float | None = None) -> None:
        """Queue ``out`` after any replies held before it, and send them all unless holding is
        allowed: ``more_waiting`` (packet-ins, with more events queued) and fewer than ``burst``
        held. Held replies mean fewer writes, and OVS takes a burst of flow-mods in one
        main-loop pass (one walk of its timed rules, one revalidation) instead of one pass each.
        Order is kept, so each packet-out still follows its flow-mod; an idle controller (no
        more events waiting) sends at once."""
        self.pending += out
        if started is not None and self._observe is not None:
            self._started.append(started)
        if more_waiting and len(self.pending) < self.burst:
            return
        out, self.pending = self.pending, []  # as flush(), inline: this is every packet-in's path
        self._send(out)
        if self._started:
            self._sent()

    def flush(self) -> None:
        """Send the held replies now."""
        out, self.pending = self.pending, []
        self._send(out)
        if self._started:
            self._sent()

    def _sent(self) -> None:
        now = time.perf_counter()
        for started in self._started:
            self._observe(now - started)
        self._started.clear()

    def _send(self, out: list[Out]) -> None:
        """Attach the datapath and send, in order. Consecutive pre-serialised messages to one
        switch go out as one write (the hot path's flow-mods and packet-outs: one system call
        instead of many, written from this thread, see lbapp.oskenfix); a burst with enough
        flow-mods goes as one bundle (one flow-table change in the switch). A message for a
        switch that is not connected is dropped."""
        datapath = self._datapath
        raw: list[bytes] = []
        raw_dp = None
        for dpid, msg in out:
            dp = datapath(dpid)
            if dp is None:
                LOG.debug("switch %016x not connected; dropped %s", dpid, type(msg).__name__)
                continue
            if isinstance(msg, RawMessage) and (raw_dp is None or raw_dp is dp):
                raw.append(msg.buf)
                raw_dp = dp
                continue
            if raw:
                self._send_raw(raw_dp, raw)
                raw, raw_dp = [], None
            if isinstance(msg, RawMessage):
                raw, raw_dp = [msg.buf], dp
            else:
                msg.datapath = dp
                dp.send_msg(msg)
        if raw:
            self._send_raw(raw_dp, raw)

    def _send_raw(self, dp, raw: list[bytes]) -> None:
        """One write of a run of raw messages; from ``bundle_min`` of them on, its flow-mods go
        as one ONF bundle (see :mod:`lbapp.pipeline.bundles`) under a rolling bundle id."""
        if self.bundle_min and len(raw) >= self.bundle_min:
            self.bundle_id = self.bundle_id % 0xFFFFFFFF + 1
            raw = bundles.bundled(raw, self.bundle_id, self.bundle_min)
        dp.send(b"".join(raw))

    def send_atomic(self, out: list[Out]) -> None:
        """Send ``out``, a pipeline taken over from another controller, so that each switch
        changes over with no gap between the old flows going and ours coming: its meter changes
        first (OVS bundles no meter-mod), then its group and flow changes as one ONF bundle
        (deleting a group deletes the flows that use it: inside the bundle they are back in
        the same commit), then the rest in order (statistics requests, packet-outs)."""
        self.flush()
        by_switch: dict[int, list[Any]] = {}
        for dpid, msg in out:
            by_switch.setdefault(dpid, []).append(msg)
        for dpid, messages in by_switch.items():
            dp = self._datapath(dpid)
            if dp is None:
                LOG.debug("switch %016x not connected; dropped %d messages", dpid, len(messages))
                continue
            raw = [_serialised(dp, m) for m in messages]
            self.bundle_id = self.bundle_id % 0xFFFFFFFF + 1
            table_changes = [m for m in raw if m[1] in bundles.TABLE_CHANGES]
            dp.send(b"".join([m for m in raw if m[1] == bundles.OFPT_METER_MOD]
                             + [bundles.control(self.bundle_id, bundles.OPEN_REQUEST, self.bundle_id)]
                             + [bundles.add(self.bundle_id, m) for m in table_changes]
                             + [bundles.control(self.bundle_id, bundles.COMMIT_REQUEST, self.bundle_id)]
                             + [m for m in raw if m[1] not in bundles.TABLE_CHANGES | {bundles.OFPT_METER_MOD}]))


def _serialised(dp, msg) -> bytes:
    """``msg``'s bytes, as os-ken's ``send_msg`` makes them (its xid set by the datapath)."""
    if isinstance(msg, RawMessage):
        return msg.buf
    msg.datapath = dp
    if msg.xid is None:
        dp.set_xid(msg)
    msg.serialize()
    return bytes(msg.buf)
