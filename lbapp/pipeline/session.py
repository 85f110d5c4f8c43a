"""Stage session (table 20): per-connection translation rules chosen by the controller's
scheduler, connections pinned in conntrack to the backend the switch's select group chose, and
where a new connection goes (the controller, or the group)."""
from __future__ import annotations

from typing import Sequence

from os_ken.lib.packet.tcp import TCP_ACK, TCP_SYN
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from lbapp import mac as macs
from lbapp.pipeline import affinity, cookies
from lbapp.pipeline.actions import (ETH_TYPE_IP, L4, PROTO_NAMES, conntrack, group, load, move, resubmit,
                                    set_field, to_controller)
from lbapp.pipeline.context import Context, SwitchView
from lbapp.pipeline.tables import (CT_EPOCH_BITS, CT_TRACKED, CT_ZONE, METER_PUNT, REG_KNOWN, REG_PERSIST, REG_PICKED,
                                   REG_PORT_SEEN, TABLES, vip_group_id)
from lbapp.schedulers.slots import refuses
from lbapp.shared import ConnKey, IPv4

TABLE = TABLES["session"]
# In a pinned flow's cookie object, next to the backend's id: the flow is an epoch's copy
# (``pin: conntrack``), so a switch's stale copies can be deleted without their counting flows.
EPOCH_COPY = 1 << 31


def session_cookie(vip_id: int, session_id: int) -> int:
    # Sessions carry no generation: they outlive a controller restart and are never swept.
    return cookies.make(TABLE.stage, vip=vip_id, obj=session_id)


# The "table kept" mark: generation, VIP and object 0 (no static flow, session or pin has all three)
KEPT_COOKIE = cookies.make(TABLE.stage)
_KEPT_MATCH = {"eth_type": 0x88B5}  # IEEE 802 local experimental: never a VIP's traffic


def kept_mark():
    """The flow that says the session table is as the controller left it (see the table's doc)."""
    return TABLE.flow("kept", _KEPT_MATCH, cookie=KEPT_COOKIE)


def is_kept_mark(cookie: int) -> bool:
    return cookie == KEPT_COOKIE


def connection_match(key: ConnKey) -> dict:
    _, src_field, dst_field = L4[PROTO_NAMES[key.protocol]]
    return {"eth_type": ETH_TYPE_IP, "ip_proto": key.protocol, "ipv4_src": str(key.src_ip),
            "ipv4_dst": str(key.dst_ip), src_field: key.src_port, dst_field: key.dst_port}


def install(key: ConnKey, vip_id: int, session_id: int, fabricated_mac: int, idle_timeout: int):
    return TABLE.flow("connection", connection_match(key), cookie=session_cookie(vip_id, session_id),
                      actions=[set_field(eth_dst=macs.format_mac(fabricated_mac))], goto="translate",
                      idle_timeout=idle_timeout, send_flow_removed=True)


def remove(key: ConnKey, vip_id: int, session_id: int):
    return TABLE.delete(connection_match(key), cookie=session_cookie(vip_id, session_id),
                        cookie_mask=cookies.object_mask(), priority="connection")


def balancer_flows(view: SwitchView) -> list:
    """Per VIP: its first packets through conntrack, a pinned connection to its backend, a new
    one to the controller (``selection: controller``, unless overloaded) or the VIP's select
    group (``selection: switch``, or a controller VIP during an overload)."""
    ctx = view.ctx
    flows = []
    for vip_id, vip in ctx.balanced_vips():
        to_vip = _vip_match(vip)
        cookie = cookies.make(TABLE.stage, generation=ctx.generation, vip=vip_id)
        flows.append(TABLE.flow("new_connection", dict(to_vip, ct_state=(0, CT_TRACKED)), cookie=cookie,
                                actions=[conntrack(CT_ZONE, table=TABLE.table_id)]))
        flows += pick_flows(ctx, vip_id, vip, refusing=vip_id in view.refusing, overloaded=vip_id in view.overloaded)
        flows += persisted_flows(ctx, vip_id, vip, view.slots.get(vip_id, ()))
        # every backend the VIP names keeps its pinned connections, drained or down ones too,
        # unless its health check failed (then they are picked afresh)
        flows += [f for backend in vip.backends if (vip_id, backend.ip) not in view.withheld_pins
                  for f in pinned_flows(ctx, vip_id, vip, backend.ip, view.epochs.get(vip_id))]
    return flows


def pick_flows(ctx: Context, vip_id: int, vip, refusing: bool, overloaded: bool = False) -> list:
    """Where a packet of the VIP that no session or pin holds goes: to the controller, through
    the punt meter, when it picks (``selection: controller``, not overloaded) or when no backend
    can take it (``refusing``: it refuses at once); else to the VIP's select group. For TCP the
    first SYN has a flow of its own: OVS then caches its datapath flow apart, and the
    connection's next packets, arriving before that cache entry is revalidated, miss it and
    find the session flow installed meanwhile instead of being sent up again. Matches never
    change with the mode (only actions): a re-add replaces them."""
    cookie = cookies.make(TABLE.stage, generation=ctx.generation, vip=vip_id)
    to_controller_now = refusing or (vip.selection == "controller" and not overloaded)
    action = dict(actions=[to_controller() if to_controller_now else group(vip_group_id(vip_id))],
                  meter=METER_PUNT if to_controller_now else None)
    if vip.persistence is not None and not refusing:  # the client's entry first (lbapp.pipeline.affinity)
        lookup = affinity.lookup(ctx.persistence_id(vip_id, vip))
        action = dict(actions=lookup + [to_controller() if to_controller_now else resubmit(TABLE.table_id)],
                      meter=METER_PUNT if to_controller_now else None)
    tracked = dict(_vip_match(vip), ct_state=(CT_TRACKED, CT_TRACKED))
    if vip.protocol != "tcp":
        return [TABLE.flow("pick", tracked, cookie=cookie, **action)]
    return [TABLE.flow("pick", dict(tracked, tcp_flags=(TCP_SYN, TCP_SYN | TCP_ACK)), cookie=cookie, **action),
            TABLE.flow("no_session", tracked, cookie=cookie, **action)]


def persisted_flows(ctx: Context, vip_id: int, vip, slots: Sequence[IPv4 | None]) -> list:
    """Where a persistent VIP's connection goes when the switch picks for it, once its client was
    looked up (back in this table with reg2 set): to the backend its entry names while that one
    holds one of the VIP's ``slots`` (up, not drained, configured), else to the select group."""
    if vip.persistence is None:
        return []
    cookie = cookies.make(TABLE.stage, generation=ctx.generation, vip=vip_id)
    looked_up = _looked_up(ctx, vip_id, vip)
    holding = sorted({ip for ip in slots if ip is not None})
    return ([TABLE.flow("persisted", dict(looked_up, **{REG_KNOWN: 1, REG_PICKED: int(ip)}), cookie=cookie, goto="pin")
             for ip in holding]
            + [TABLE.flow("persisting", looked_up, cookie=cookie,
                          actions=[move(L4[vip.protocol][1], REG_PORT_SEEN, 16), group(vip_group_id(vip_id))])])


def persisted_moved(ctx: Context, vip_id: int, vip, slots: Sequence[IPv4 | None]) -> list:
    """A persistent VIP's slots moved (a health verdict, a drain): its persisted flows again, and
    the removal of the one of each backend that holds no slot now."""
    if vip.persistence is None:
        return []
    holding = {ip for ip in slots if ip is not None}
    known = dict(_looked_up(ctx, vip_id, vip), **{REG_KNOWN: 1})
    gone = [TABLE.delete(dict(known, **{REG_PICKED: int(b.ip)}), priority="persisted",
                         cookie=cookies.make(TABLE.stage, vip=vip_id),
                         cookie_mask=cookies.stage_mask() | cookies.VIP_MASK)
            for b in vip.backends if b.ip not in holding]
    return gone + persisted_flows(ctx, vip_id, vip, slots)


def _looked_up(ctx: Context, vip_id: int, vip) -> dict:
    """A persistent VIP's connection back in this table after its client's lookup."""
    return dict(_vip_match(vip), ct_state=(CT_TRACKED, CT_TRACKED), **{REG_PERSIST: ctx.persistence_id(vip_id, vip)})


def pinned_flows(ctx: Context, vip_id: int, vip, backend: IPv4, epoch: int | None = None) -> list:
    """Connections pinned to ``backend`` (their ct_mark) go to it. With ``epoch`` (a ``pin:
    conntrack`` VIP's current one): a connection's first packet in the epoch is re-committed with
    it as ct_label, so that flow's packet counter counts the connections seen in the epoch; a
    copy above it takes their later packets without a commit."""
    cookie = _pinned_cookie(ctx, vip_id, backend)
    to_backend = set_field(eth_dst=macs.format_mac(ctx.scheme.encode(backend)))
    if epoch is None:
        return [TABLE.flow("pinned", _pinned_match(vip, backend), cookie=cookie, actions=[to_backend],
                           goto="translate")]
    # flow-removed when the epoch's copy goes: its final byte and packet counts (lbapp.state.traffic)
    return [TABLE.flow("pinned_seen", _seen_match(vip, backend, epoch), cookie=cookie | EPOCH_COPY,
                       actions=[to_backend], goto="translate", send_flow_removed=True),
            TABLE.flow("pinned", _pinned_match(vip, backend), cookie=cookie, goto="translate",
                       actions=[conntrack(CT_ZONE, commit=True, label=epoch), to_backend])]


def next_epoch(ctx: Context, vip_id: int, vip, backends: list[IPv4], old: int, new: int) -> list:
    """A ``pin: conntrack`` VIP's pinned flows moved from epoch ``old`` to ``new``: each
    backend's counting flow is replaced in place (OVS carries its counters over) and its copy
    for the old epoch goes."""
    out = []
    for backend in backends:
        out += pinned_flows(ctx, vip_id, vip, backend, new)
        out.append(TABLE.delete(_seen_match(vip, backend, old), cookie_mask=cookies.object_mask(),
                                cookie=_pinned_cookie(ctx, vip_id, backend) | EPOCH_COPY, priority="pinned_seen"))
    return out


def sweep_epoch_copies(ctx: Context, epochs: dict[int, int]) -> list:
    """Every epoch copy of the ``pin: conntrack`` VIPs' pinned flows, whatever its epoch: a
    switch that was away may still hold one of an epoch that ended meanwhile (or of an earlier
    run), which would take its connections past their counting flow for good. Sent before the
    pipeline is installed again; the counting flows stay (their connections keep their pins)."""
    return [TABLE.delete(_pinned_match(vip, b.ip), cookie=_pinned_cookie(ctx, vip_id, b.ip) | EPOCH_COPY,
                         cookie_mask=cookies.object_mask())
            for vip_id, vip in ctx.balanced_vips() if vip_id in epochs for b in vip.backends]


def remove_pinned(ctx: Context, vip_id: int, vip, backend: IPv4):
    """The removal of :func:`pinned_flows`, any generation and epoch (not strict: the epoch's
    copy matches more; its cookie's copy bit is left out of the mask)."""
    return TABLE.delete(_pinned_match(vip, backend), cookie=_pinned_cookie(ctx, vip_id, backend),
                        cookie_mask=cookies.object_mask() & ~EPOCH_COPY)


def pinned_backend_id(obj: int) -> int:
    """The backend id in a pinned flow's (or its epoch copy's) cookie object."""
    return obj & ~EPOCH_COPY


def is_epoch_copy(obj: int) -> bool:
    """Whether a pinned flow's cookie object is an epoch copy's (not a counting flow's)."""
    return bool(obj & EPOCH_COPY)


def _pinned_cookie(ctx: Context, vip_id: int, backend: IPv4) -> int:
    return cookies.make(TABLE.stage, generation=ctx.generation, vip=vip_id, obj=ctx.backend_ids[backend])


def _vip_match(vip) -> dict:
    proto, _, dst_field = L4[vip.protocol]
    return {"eth_type": ETH_TYPE_IP, "ip_proto": proto, "ipv4_dst": str(vip.ip), dst_field: vip.port}


def _pinned_match(vip, backend: IPv4) -> dict:
    return dict(_vip_match(vip), ct_state=(CT_TRACKED, CT_TRACKED), ct_mark=int(backend))


def _seen_match(vip, backend: IPv4, epoch: int) -> dict:
    return dict(_pinned_match(vip, backend), ct_label=(epoch, (1 << CT_EPOCH_BITS) - 1))


def epoch_of(match: dict) -> int:
    """The epoch an epoch's copy of a pinned flow matches (0: not one)."""
    label = match.get("ct_label", 0)
    return (label[0] if isinstance(label, tuple) else label) & ((1 << CT_EPOCH_BITS) - 1)


def pick_packet_out(backend: IPv4, fabricated_mac: int, in_port: int, data: bytes) -> parser.OFPPacketOut:
    """The packet-out that forwards a ``pin: conntrack`` connection's first packet to
    ``backend``: the backend into reg1 and its fabricated MAC into eth_dst, as a select group's
    bucket leaves them, then the pin stage commits the connection with it as ct_mark. (The hot
    path sends it patched from a template: lbapp.pipeline.fastpath.PickTemplate.)"""
    return parser.OFPPacketOut(datapath=None, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port, data=data,
                               actions=[load(REG_PICKED, int(backend), 0, 32),
                                        set_field(eth_dst=macs.format_mac(fabricated_mac)),
                                        resubmit(TABLES["pin"].table_id)])


def lingering_pin(ctx: Context, vip, backend: IPv4):
    """The pin flow of a backend removed from a ``selection: switch`` VIP: its pinned connections
    carry on until all of them have been idle for the VIP's idle timeout; the switch then
    removes it and reports it (the edge's source NAT for the pair goes then). It replaces the
    backend's pin flow, whose last-use time OVS keeps: idle counts from the last packet. Generation
    0: no reload sweeps it."""
    return TABLE.flow("pinned", _pinned_match(vip, backend),
                      cookie=cookies.make_lingering(TABLE.stage, 0, int(backend)),
                      actions=[set_field(eth_dst=macs.format_mac(ctx.scheme.encode(backend)))], goto="translate",
                      idle_timeout=vip.idle_timeout, send_flow_removed=True)


def selection_group(ctx: Context, vip_id: int, slots: Sequence[IPv4 | None], command: int) -> parser.OFPGroupMod:
    """The select group of a ``selection: switch`` VIP: one bucket per slot, in slot order.

    Buckets of equal weight make OVS's default select method (dp_hash over the five-tuple,
    256 hash values at most) map hash value i to bucket i, so the controller's slot table is
    what the switch uses. A bucket leaves its backend in a register for the pin stage, which
    commits the connection with it as ct_mark (buckets run as action sets, where OVS drops
    ct()). No bucket at all (every backend drained) drops new connections."""
    pin = TABLES["pin"].table_id
    made: dict[IPv4, _Bucket] = {}  # each backend's bucket made (and serialised) once: it fills many slots
    buckets = [] if refuses(slots) else [
        made.get(ip) or made.setdefault(ip, _Bucket(weight=1, actions=[
            load(REG_PICKED, int(ip), 0, 32), set_field(eth_dst=macs.format_mac(ctx.scheme.encode(ip))), resubmit(pin)]))
        for ip in slots]
    return parser.OFPGroupMod(datapath=None, command=command, type_=ofp.OFPGT_SELECT,
                              group_id=vip_group_id(vip_id), buckets=buckets)


class _Bucket(parser.OFPBucket):
    """A bucket that keeps its bytes: a group of 256 slots names each backend in many buckets,
    and serialising every one again made a switch with 1,000 VIPs' groups take seconds."""

    _bytes: bytes | None = None

    def serialize(self, buf: bytearray, offset: int) -> None:
        if self._bytes is None:
            own = bytearray()
            super().serialize(own, 0)
            self._bytes = bytes(own)
        if len(buf) < offset + len(self._bytes):
            buf += bytearray(offset + len(self._bytes) - len(buf))
        buf[offset:offset + len(self._bytes)] = self._bytes


def remove_selection_group(vip_id: int) -> parser.OFPGroupMod:
    # Deleting a group also deletes the flows that send to it: only for a VIP that is gone.
    return parser.OFPGroupMod(datapath=None, command=ofp.OFPGC_DELETE, type_=ofp.OFPGT_SELECT,
                              group_id=vip_group_id(vip_id))
