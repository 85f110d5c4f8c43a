"""A new connection's first packet, punted by a VIP's pick flow: the per-connection hot path.
The VIP's scheduler picks a backend; with ``pin: flow`` one session flow-mod and one packet-out
follow, with ``pin: conntrack`` one packet-out that pins the connection in conntrack, both
patched from pre-serialised templates (lbapp.pipeline.fastpath). No backend: refused at once.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp

from lbapp import packets
from lbapp.handlers import persistence
from lbapp.pipeline.actions import output
from lbapp.pipeline.fastpath import PickTemplate, packet_out, packet_out_to_table
from lbapp.schedulers.slots import refuses
from lbapp.shared import ConnKey, IPv4
from lbapp.state.affinity import AffinityMemory
from lbapp.state.pinmemory import PinMemory
from lbapp.state.pinned import PinnedCounts
from lbapp.state.running import Running
from lbapp.state.sessions import Sessions
from lbapp.state.vips import Vip

LOG = logging.getLogger("lbapp")
Out = tuple[int, Any]


def new_connection(running: Running, sessions: Sessions, pinned: PinnedCounts, memory: PinMemory,
                   affinities: AffinityMemory, refusals: Counter[str], dpid: int, in_port: int, data: bytes,
                   now: float) -> list[Out]:
    """What answers the first packet ``data`` of a connection to a VIP the controller picks
    for (or a later one the switch no longer holds). A pick goes into ``sessions`` (and, for
    ``pin: conntrack``, ``pinned`` and ``memory``; for a persistent VIP, ``affinities`` and the
    switch's entry); a refusal is counted in ``refusals``. Raises PacketError for a packet that
    is no such connection's."""
    key = packets.connection_key(data)
    vip = running.vips.by_key.get((key.dst_ip, key.protocol, key.dst_port))
    if vip is None or vip.model.external_director:
        raise packets.PacketError(f"{key.src_ip}:{key.src_port} -> {key.dst_ip}:{key.dst_port} is no VIP "
                                  "the balancer picks for")
    if vip.template is None:  # the switch picks for it, and sends here when it has no backend
        slots = running.slots.get(vip.id)
        if slots is not None and refuses(slots[1]):
            return refuse(vip, refusals, dpid, in_port, data, key)
        return []  # a reload's race (an older flow punted it): its retransmission finds the group

    fresh = False  # a persistent VIP's client picked now: its entry goes to the switch
    if isinstance(vip.template, PickTemplate):
        backend, fresh = _pin_in_conntrack(running, vip, sessions, pinned, memory, affinities, dpid, key, data, now)
        if backend is None:
            return refuse(vip, refusals, dpid, in_port, data, key)
        out = [(dpid, vip.template.render(backend, running.ctx.scheme.encode(backend), in_port, data))]
    else:
        sess = sessions.get(key)
        if sess is not None:  # a retransmission raced the session flow, or the switch lost it: the same rule
            if sess.flow_vip != vip.id:  # taken back from an earlier run: its cookie now names this run's VIP id
                sessions.flow_under(sess, vip.id)
        else:
            backend, fresh = _pick(running, affinities, sessions, vip, key, data, now)
            if backend is None:
                return refuse(vip, refusals, dpid, in_port, data, key)
            sess = sessions.add(key, vip.id, backend, now, dpid)
            LOG.debug("session %d: %s:%d -> %s %s:%d -> %s", sess.session_id, key.src_ip, key.src_port,
                      vip.model.name, vip.key.ip, vip.key.port, backend)
        backend = sess.backend
        out = [(dpid, vip.template.render(key, sess.session_id, running.ctx.scheme.encode(backend))),
               # Re-enter the pipeline at table 0: the new session flow now carries it on.
               (dpid, packet_out_to_table(data, in_port))]
    if not fresh:
        return out
    # the client's entry goes first: the switch has it before the packet-out's packet, so the
    # client's next connection finds it
    return [(dpid, persistence.written(running, affinities, vip, key, backend, now))] + out


def _pick(running: Running, affinities: AffinityMemory, sessions: Sessions, vip: Vip, key: ConnKey, data: bytes,
          now: float) -> tuple[IPv4 | None, bool]:
    """A new connection's backend, and whether it is a persistent VIP's client picked now."""
    if vip.model.persistence is None:
        return vip.scheduler.pick(key, sessions.counts(vip.id), now), False
    return persistence.choose(running, affinities, vip, key, data, now,
                              lambda: vip.scheduler.pick(key, sessions.counts(vip.id), now))


def _pin_in_conntrack(running: Running, vip: Vip, sessions: Sessions, pinned: PinnedCounts, memory: PinMemory,
                      affinities: AffinityMemory, dpid: int, key: ConnKey, data: bytes, now: float
                      ) -> tuple[IPv4 | None, bool]:
    """A ``pin: conntrack`` VIP's new connection: the backend one packet-out forwards its first
    packet to, committing it to conntrack with that backend as its mark; no flow (None: no
    backend), and whether it is a persistent VIP's client picked now. A connection the controller
    remembers (the switch lost its pin, or a copy of its first packet raced the commit) is pinned
    again to the backend it had, unless that one failed."""
    backend, fresh = memory.recall(key, now), False
    if backend is None or (vip.id, backend) in running.backends.withheld_pins():
        backend, fresh = _pick(running, affinities, sessions, vip, key, data, now)
        if backend is None:
            return None, False
        sessions.counted(vip.id, backend)
        pinned.picked(dpid, vip.id, backend)
    memory.remember(key, backend, now)
    return backend, fresh


def remember_pins(running: Running, memory: PinMemory, found: Iterable[tuple[ConnKey, IPv4]], now: float) -> int:
    """Pins the switch's own conntrack holds (lbapp.ctzone.pins), remembered again from ``now``
    for the ``pin: conntrack`` VIPs they belong to: a connection that lives longer than the
    memory, or one an earlier run picked, keeps its backend when the switch later loses its
    conntrack. A pin to a backend the VIP no longer has is left out. How many were remembered."""
    backends_of: dict[int, frozenset[IPv4]] = {}
    count = 0
    for key, backend in found:
        vip = running.vips.by_key.get((key.dst_ip, key.protocol, key.dst_port))
        if vip is None or not vip.pins_in_conntrack:
            continue
        if vip.id not in backends_of:
            backends_of[vip.id] = frozenset(b.ip for b in vip.model.backends)
        if backend in backends_of[vip.id]:
            memory.remember(key, backend, now)
            count += 1
    return count


def refuse(vip: Vip, refusals: Counter[str], dpid: int, in_port: int, data: bytes, key: ConnKey) -> list[Out]:
    """No backend can take a new connection: answer at once, as a closed port would (TCP
    reset, ICMP port unreachable), rather than let the client time out. Counted."""
    refusals["refused_no_backend"] += 1
    LOG.debug("VIP %s: no backend can take %s:%d: refused", vip.model.name, key.src_ip, key.src_port)
    frame = packets.refusal(data)
    return [(dpid, packet_out(frame, ofp.OFPP_CONTROLLER, [output(in_port)]))] if frame else []
