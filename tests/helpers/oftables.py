"""An offline model of an OpenFlow 1.3 switch (Open vSwitch flavour), for unit tests.

Why: a test that checks the layout of flow-mods says little about what a switch does with a
packet. :class:`Switch` applies what a Balancer returns for one switch and pushes a packet (a
dict of OXM-style fields) through its tables, so a test asserts where the packet leaves and how
it was rewritten. It knows only what lbapp uses and refuses everything else with
:class:`ModelError`, at install time where it can: a new action, match field, instruction or
message type cannot silently pass.

Modelled: flow-mod add (replacing an equal match and priority), delete and delete_strict with
cookie masks; select groups (deleting one deletes the flows that use it); apply-actions and
goto; output (IN_PORT, NORMAL, CONTROLLER, FLOOD; a plain output to the ingress port goes
nowhere, as in OVS), set_field, Nicira move and load with bit offsets, dec_ttl, group,
resubmit and a minimal ct() (see :class:`Conntrack`); ONF bundles (unwrapped at once, no
atomicity); pre-serialised flow-mods and packet-outs (parsed); packet-outs run on demand.
Not modelled: timeouts and flow-removed, counters, modify commands, write-actions, other group
types, metadata, VLANs, meters, NAT, the bytes of a packet (no checksums).
"""
from __future__ import annotations

import ipaddress
import struct
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable, NamedTuple

from os_ken.lib.packet import arp, ethernet, icmp, ipv4, packet as packet_lib, tcp, udp
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from lbapp.pipeline.fastpath import RawMessage


class ModelError(Exception):
    """Something the model does not know, or that a switch would refuse."""


MAC, IP, INT = "mac", "ipv4", "int"
FIELDS = {"in_port": (32, INT), "eth_src": (48, MAC), "eth_dst": (48, MAC), "eth_type": (16, INT),
          "ip_proto": (8, INT), "ipv4_src": (32, IP), "ipv4_dst": (32, IP), "nw_ttl": (8, INT),
          "tcp_src": (16, INT), "tcp_dst": (16, INT), "tcp_flags": (16, INT), "udp_src": (16, INT), "udp_dst": (16, INT),
          "arp_op": (16, INT), "arp_spa": (32, IP), "arp_tpa": (32, IP), "arp_sha": (48, MAC),
          "arp_tha": (48, MAC), "icmpv4_type": (8, INT), "icmpv4_code": (8, INT), "ct_state": (32, INT), "ct_mark": (32, INT), "ct_zone": (16, INT),
          **{f"reg{i}": (32, INT) for i in range(8)}}  # name -> (bits, how it reads as text)
METADATA = {"ct_state": 0, "ct_mark": 0, "ct_zone": 0, **{f"reg{i}": 0 for i in range(8)}}
# OpenFlow prerequisites: a match on the key needs this field matched exactly (OVS refuses the flow)
PREREQ = {**dict.fromkeys(("ip_proto", "ipv4_src", "ipv4_dst"), ("eth_type", 0x0800)),
          **dict.fromkeys(("arp_op", "arp_spa", "arp_tpa", "arp_sha", "arp_tha"), ("eth_type", 0x0806)),
          "tcp_src": ("ip_proto", 6), "tcp_dst": ("ip_proto", 6), "tcp_flags": ("ip_proto", 6), "udp_src": ("ip_proto", 17),
          "udp_dst": ("ip_proto", 17), "icmpv4_type": ("ip_proto", 1), "icmpv4_code": ("ip_proto", 1)}
CT_NEW, CT_EST, CT_RPL, CT_TRK = 0x01, 0x02, 0x08, 0x20
CT_COMMIT, NO_RECIRC = 1, 255
PORT_NAMES = {ofp.OFPP_NORMAL: "NORMAL", ofp.OFPP_CONTROLLER: "CONTROLLER", ofp.OFPP_FLOOD: "FLOOD",
              ofp.OFPP_ALL: "ALL", ofp.OFPP_LOCAL: "LOCAL"}
ONF_EXPERIMENTER, ONF_BUNDLE_CONTROL, ONF_BUNDLE_ADD = 0x4F4E4600, 2300, 2301
ACTIONS = (parser.OFPActionOutput, parser.OFPActionSetField, parser.OFPActionDecNwTtl, parser.OFPActionGroup,
           parser.NXActionRegMove, parser.NXActionRegLoad, parser.NXActionResubmitTable, parser.NXActionCT,
           parser.NXActionLearn)
NAT_SRC = 1  # NX_NAT_F_SRC: nat(src=...); a nat with no flags undoes a connection's own translation


def bits(name: str) -> int:
    if name not in FIELDS:
        raise ModelError(f"the model does not know the field {name!r}")
    return FIELDS[name][0]


def value_of(name: str, value: Any) -> int:
    """A field's value as an int; MACs and IPv4 addresses may come as text."""
    bits(name)
    if isinstance(value, int):
        return value
    kind = FIELDS[name][1]
    if kind == MAC:
        return int(value.replace("-", ":").replace(":", ""), 16)
    return int(ipaddress.IPv4Address(value)) if kind == IP else int(value, 0)


def text_of(name: str, value: int) -> Any:
    kind = FIELDS[name][1]
    if kind == MAC:
        return ":".join(f"{b:02x}" for b in value.to_bytes(6, "big"))
    return str(ipaddress.IPv4Address(value)) if kind == IP else value


def fields_of(frame: bytes) -> dict[str, int]:
    """The fields of an Ethernet frame (IPv4 with TCP or UDP, or ARP), for :meth:`Switch.process`."""
    pkt = packet_lib.Packet(frame)
    eth = pkt.get_protocol(ethernet.ethernet)
    if eth is None or eth.ethertype == 0x8100:
        raise ModelError("the model reads untagged Ethernet frames only")
    out: dict[str, Any] = {"eth_src": eth.src, "eth_dst": eth.dst, "eth_type": eth.ethertype}
    ip = pkt.get_protocol(ipv4.ipv4)
    if ip:
        out.update(ipv4_src=ip.src, ipv4_dst=ip.dst, ip_proto=ip.proto, nw_ttl=ip.ttl)
    for proto, name in ((tcp.tcp, "tcp"), (udp.udp, "udp")):
        if (l4 := pkt.get_protocol(proto)) is not None:
            out.update({f"{name}_src": l4.src_port, f"{name}_dst": l4.dst_port})
            if name == "tcp":
                out["tcp_flags"] = l4.bits
    if (msg := pkt.get_protocol(icmp.icmp)) is not None:
        out.update(icmpv4_type=msg.type, icmpv4_code=msg.code)
    if (a := pkt.get_protocol(arp.arp)) is not None:
        out.update(arp_op=a.opcode, arp_spa=a.src_ip, arp_tpa=a.dst_ip, arp_sha=a.src_mac, arp_tha=a.dst_mac)
    return {n: value_of(n, v) for n, v in out.items()}


class Match:
    """A flow's match as field -> (value, mask); a field the packet lacks never matches."""

    def __init__(self, items: Iterable[tuple[str, Any]]) -> None:
        self.fields = {}
        for name, raw in items:
            value, mask = raw if isinstance(raw, tuple) else (raw, (1 << bits(name)) - 1)
            mask = value_of(name, mask)
            self.fields[name] = (value_of(name, value) & mask, mask)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Match) and self.fields == other.fields

    def matches(self, pkt: dict[str, int]) -> bool:
        return all(n in pkt and pkt[n] & m == v for n, (v, m) in self.fields.items())

    def within(self, other: Match) -> bool:
        """At least as specific as ``other``: what a non-strict delete with ``other`` removes."""
        return all(n in self.fields and self.fields[n][1] & m == m and self.fields[n][0] & m == v
                   for n, (v, m) in other.fields.items())

    def check_prerequisites(self) -> None:
        for name in self.fields:
            if name in PREREQ and self.fields.get(PREREQ[name][0], (None,))[0] != PREREQ[name][1]:
                raise ModelError(f"a match on {name} needs {PREREQ[name][0]}={PREREQ[name][1]:#x}")


def check_actions(actions: Iterable[Any]) -> list:
    """Refuse, at install, any action the model cannot run (or a field or bit range it does not
    know); ct()'s exec may only set ct_mark."""
    actions = list(actions)
    for a in actions:
        if not isinstance(a, ACTIONS):
            raise ModelError(f"the model does not know the action {type(a).__name__}")
        if isinstance(a, parser.OFPActionSetField):
            bits(a.key)
        elif isinstance(a, parser.NXActionRegMove):
            _span(a.src_field, a.src_ofs, a.n_bits)
            _span(a.dst_field, a.dst_ofs, a.n_bits)
        elif isinstance(a, parser.NXActionRegLoad):
            _span(a.dst, *_ofs_nbits(a))
        elif isinstance(a, parser.NXActionCT):
            if a.alg or a.zone_src:
                raise ModelError("ct() with an ALG or a zone from a field is not modelled")
            for e in a.actions:
                if isinstance(e, parser.NXActionNAT):
                    if e.flags not in (0, NAT_SRC) or e.range_ipv4_min != (e.range_ipv4_max or e.range_ipv4_min) \
                            or e.range_proto_min is not None:
                        raise ModelError("only nat(src=ONE_IP) and a plain nat are modelled")
                    continue
                check_actions([e])
                if "ct_mark" not in (getattr(e, "key", None), getattr(e, "dst_field", None), getattr(e, "dst", None)):
                    raise ModelError(f"ct(exec(...)) may only set ct_mark, not run {type(e).__name__}")
        elif isinstance(a, parser.NXActionLearn):
            for spec in a.specs:
                if not isinstance(spec, (parser.NXFlowSpecMatch, parser.NXFlowSpecLoad)):
                    raise ModelError(f"learn() with {type(spec).__name__} is not modelled")
                for end in (spec.src, spec.dst):
                    if isinstance(end, tuple):
                        _span(_oxm(end[0]), end[1], spec.n_bits)
        elif isinstance(a, parser.NXActionResubmitTable) and (a.in_port != 0xFFF8 or a.table_id == 255):
            raise ModelError("resubmit is modelled with in_port=IN_PORT and an explicit table only")
    return actions


def _oxm(name: str) -> str:
    """learn()'s field names are NXM's (``eth_dst_nxm``); the model's are the OXM ones."""
    return name[:-4] if name.endswith("_nxm") else name


def _ofs_nbits(a: parser.NXActionRegLoad) -> tuple[int, int]:
    return a.ofs_nbits >> 6, (a.ofs_nbits & 0x3F) + 1


def _span(name: str, ofs: int, n_bits: int) -> int:
    """The mask of bits ``ofs``..``ofs+n_bits-1`` of a field, refused when outside it."""
    if ofs + n_bits > bits(name):
        raise ModelError(f"{name}[{ofs}..{ofs + n_bits - 1}] is outside the field")
    return ((1 << n_bits) - 1) << ofs


@dataclass
class Flow:
    table_id: int
    priority: int
    cookie: int
    match: Match
    actions: list
    goto: int | None
    meter: int | None = None  # the meter its packets pass first (the model lets every packet through)

    @classmethod
    def of(cls, mod: parser.OFPFlowMod) -> Flow:
        actions, goto, meter = [], None, None
        for ins in mod.instructions:
            if isinstance(ins, parser.OFPInstructionMeter):
                meter = ins.meter_id
            elif isinstance(ins, parser.OFPInstructionActions) and ins.type == ofp.OFPIT_APPLY_ACTIONS:
                actions += check_actions(ins.actions)
            elif isinstance(ins, parser.OFPInstructionGotoTable):
                goto = ins.table_id
            else:
                raise ModelError(f"the model does not know the instruction {ins}")
        if goto is not None and goto <= mod.table_id:
            raise ModelError(f"table {mod.table_id}: goto_table {goto} does not go forward")
        match = Match(mod.match.items())
        match.check_prerequisites()
        return cls(mod.table_id, mod.priority, mod.cookie, match, actions, goto, meter)


@dataclass
class Group:
    """A select group: one bucket (an action list) per packet, picked by ``Switch.bucket_for``."""

    group_id: int
    buckets: list[list]


class Conntrack:
    """Committed connections by (zone, 5-tuple) -> ct_mark. Tracking gives +trk+new to an
    unknown connection and +trk+est (+rpl in the reply direction) with its mark to a committed
    one. Real conntrack may still say +new for a committed connection no reply was seen for (a
    retransmitted SYN); lbapp's flows only look at +trk, so the model does not go that far."""

    def __init__(self) -> None:
        self.marks: dict[tuple, int] = {}
        self.snat: dict[tuple, int] = {}  # committed connection -> the source its nat gave it
        self.replies: dict[tuple, tuple] = {}  # a translated connection's reply 5-tuple -> the connection

    @staticmethod
    def key(pkt: dict[str, int], zone: int) -> tuple:
        if pkt.get("eth_type") != 0x0800:
            raise ModelError("ct() on a packet that is not IPv4 is not modelled")
        l4 = {6: "tcp", 17: "udp"}.get(pkt["ip_proto"])
        ports = (pkt[f"{l4}_src"], pkt[f"{l4}_dst"]) if l4 else (0, 0)
        return zone, pkt["ip_proto"], pkt["ipv4_src"], pkt["ipv4_dst"], *ports

    def track(self, pkt: dict[str, int], zone: int) -> tuple[int, int]:
        zone_, proto, src, dst, sport, dport = key = self.key(pkt, zone)
        if key in self.marks:
            return CT_TRK | CT_EST, self.marks[key]
        reply = self.replies.get(key, (zone_, proto, dst, src, dport, sport))
        if reply in self.marks:
            return CT_TRK | CT_EST | CT_RPL, self.marks[reply]
        return CT_TRK | CT_NEW, 0

    def commit(self, pkt: dict[str, int], zone: int, mark: int, snat: int | None = None) -> None:
        key = self.key(pkt, zone)
        self.marks[key] = mark
        if snat is not None and key not in self.snat:  # a connection's translation is fixed at its first commit
            zone_, proto, src, dst, sport, dport = key
            self.snat[key] = snat
            self.replies[(zone_, proto, dst, snat, dport, sport)] = key

    def translate(self, pkt: dict[str, int], zone: int) -> dict[str, int]:
        """The packet as a ct(nat) leaves it: a translated connection's source rewritten, or its
        reply's destination rewritten back; any other packet unchanged."""
        key = self.key(pkt, zone)
        if key in self.snat:
            return dict(pkt, ipv4_src=self.snat[key])
        if key in self.replies:
            return dict(pkt, ipv4_dst=self.replies[key][2])
        return pkt

    def mark_of(self, pkt: dict[str, Any], zone: int) -> int | None:
        return self.marks.get(self.key({n: value_of(n, v) for n, v in pkt.items()}, zone))


class Hit(NamedTuple):
    table: int
    priority: int
    cookie: int


class Output(NamedTuple):
    port: int | str  # a port number or NORMAL, CONTROLLER, FLOOD...
    packet: dict[str, int]  # the packet as it left
    cookie: int  # the flow whose action sent it (a packet-in carries it)


class PacketOut(NamedTuple):
    in_port: int
    actions: list
    data: bytes


@dataclass
class Result:
    outputs: list[Output]
    trace: list[Hit]
    end: dict[str, int]  # the packet where the pipeline ended (group buckets work on copies)

    @property
    def ports(self) -> list[int | str]:
        return [o.port for o in self.outputs] or ["drop"]

    @property
    def packet(self) -> dict[str, int]:
        """The packet as it left through its last output (else as the pipeline ended)."""
        return self.outputs[-1].packet if self.outputs else self.end

    @property
    def text(self) -> dict[str, Any]:
        return {n: text_of(n, v) for n, v in self.packet.items()}


class _TtlExpired(Exception):
    pass


def default_bucket(group_id: int, pkt: dict[str, int], n_buckets: int) -> int:
    """A deterministic stand-in for OVS's dp_hash over the 5-tuple."""
    tuple5 = [pkt.get(f, 0) for f in ("ip_proto", "ipv4_src", "ipv4_dst", "tcp_src", "tcp_dst", "udp_src", "udp_dst")]
    return zlib.crc32(repr((group_id, tuple5)).encode()) % n_buckets


class Switch:
    """Flow tables, groups and conntrack of one switch; ``bucket_for(group_id, packet)`` picks a
    select group's bucket (default: :func:`default_bucket`)."""

    MAX_DEPTH = 64

    def __init__(self, bucket_for: Callable[[int, dict], int] | None = None) -> None:
        self.tables: dict[int, list[Flow]] = {}
        self.groups: dict[int, Group] = {}
        self.meters: set[int] = set()
        self.conntrack = Conntrack()
        self.bucket_for = bucket_for

    # --- installing ---

    def apply(self, messages: Iterable[Any]) -> list[PacketOut]:
        """Apply flow-mods and group-mods (objects or bytes); the packet-outs are returned, not
        run (see :meth:`packet_out`); stats and barrier requests and bundle controls are ignored."""
        packet_outs = []
        for msg in messages:
            if isinstance(msg, tuple) and not isinstance(msg, PacketOut):
                raise ModelError("apply() takes one switch's messages: filter the (dpid, message) pairs")
            if isinstance(msg, (RawMessage, bytes, bytearray)):
                msg = _parse(bytes(getattr(msg, "buf", msg)))
            if isinstance(msg, parser.OFPFlowMod):
                self._flow_mod(msg)
            elif isinstance(msg, parser.OFPGroupMod):
                self._group_mod(msg)
            elif isinstance(msg, parser.OFPMeterMod):
                self._meter_mod(msg)
            elif isinstance(msg, parser.OFPPacketOut):
                packet_outs.append(PacketOut(msg.in_port, list(msg.actions), bytes(msg.data)))
            elif isinstance(msg, PacketOut):
                packet_outs.append(msg)
            elif isinstance(msg, parser.ONFBundleAddMsg):
                packet_outs += self.apply([msg.message])
            elif not (msg is None or isinstance(msg, (parser.OFPMultipartRequest, parser.OFPBarrierRequest,
                                                      parser.ONFBundleCtrlMsg))):
                raise ModelError(f"the model does not know the message {type(msg).__name__}")
        return packet_outs

    def flow_stats(self, request: parser.OFPFlowStatsRequest) -> list[dict[str, Any]]:
        """What the switch answers a flow statistics request with (counters are not modelled):
        per flow of the requested table and cookie (under its mask), its cookie, priority, match
        (fields as os-ken names them, addresses as text, unmasked fields only) and the eth_dst its
        set_field writes."""
        if request.match.items() or request.out_port != ofp.OFPP_ANY or request.out_group != ofp.OFPG_ANY:
            raise ModelError("flow statistics filtered by match, out_port or out_group are not modelled")
        out = []
        for table_id, table in sorted(self.tables.items()):
            if request.table_id not in (ofp.OFPTT_ALL, table_id):
                continue
            for f in table:
                if f.cookie & request.cookie_mask != request.cookie & request.cookie_mask:
                    continue
                eth_dst = next((a.value for a in f.actions if isinstance(a, parser.OFPActionSetField)
                                and a.key == "eth_dst"), None)
                match = tuple((n, text_of(n, v)) for n, (v, m) in f.match.fields.items() if m == (1 << bits(n)) - 1)
                out.append({"cookie": f.cookie, "priority": f.priority, "match": match, "eth_dst": eth_dst})
        return out

    def _meter_mod(self, mod: parser.OFPMeterMod) -> None:
        """As OpenFlow has it: adding a meter that exists, or modifying one that does not, is an
        error; deleting one deletes the flows that use it."""
        if mod.command == ofp.OFPMC_ADD:
            if mod.meter_id in self.meters:
                raise ModelError(f"meter {mod.meter_id:#x} added twice (OFPMMFC_METER_EXISTS)")
            self.meters.add(mod.meter_id)
        elif mod.command == ofp.OFPMC_MODIFY:
            if mod.meter_id not in self.meters:
                raise ModelError(f"meter {mod.meter_id:#x} modified but absent (OFPMMFC_UNKNOWN_METER)")
        elif mod.command == ofp.OFPMC_DELETE:
            self.meters.discard(mod.meter_id)
            for table in self.tables.values():
                table[:] = [f for f in table if f.meter != mod.meter_id]

    def _flow_mod(self, mod: parser.OFPFlowMod) -> None:
        if mod.command == ofp.OFPFC_ADD:
            flow = Flow.of(mod)
            if flow.meter is not None and flow.meter not in self.meters:
                raise ModelError(f"a flow in table {flow.table_id} uses meter {flow.meter:#x}, which does not exist")
            for a in flow.actions:
                if isinstance(a, parser.OFPActionGroup) and a.group_id not in self.groups:
                    raise ModelError(f"a flow in table {flow.table_id} sends to group {a.group_id:#x}, "
                                     "which does not exist")
            table = self.tables.setdefault(flow.table_id, [])
            table[:] = [f for f in table if not (f.priority == flow.priority and f.match == flow.match)] + [flow]
        elif mod.command in (ofp.OFPFC_DELETE, ofp.OFPFC_DELETE_STRICT):
            if mod.out_port != ofp.OFPP_ANY or mod.out_group != ofp.OFPG_ANY:
                raise ModelError("deletes filtered by out_port or out_group are not modelled")
            match, strict = Match(mod.match.items()), mod.command == ofp.OFPFC_DELETE_STRICT
            for table_id, table in self.tables.items():
                if mod.table_id in (ofp.OFPTT_ALL, table_id):
                    table[:] = [f for f in table if not (
                        f.cookie & mod.cookie_mask == mod.cookie & mod.cookie_mask
                        and (f.priority == mod.priority and f.match == match if strict else f.match.within(match)))]
        else:
            raise ModelError(f"flow-mod command {mod.command} is not modelled")

    def _group_mod(self, mod: parser.OFPGroupMod) -> None:
        exists = mod.group_id in self.groups
        if mod.command == ofp.OFPGC_DELETE:
            gone = set(self.groups) if mod.group_id == ofp.OFPG_ALL else {mod.group_id}
            for g in gone:
                self.groups.pop(g, None)
            for table in self.tables.values():  # OVS deletes the flows that send to a deleted group
                table[:] = [f for f in table if not any(isinstance(a, parser.OFPActionGroup) and a.group_id in gone
                                                        for a in f.actions)]
        elif (mod.command, exists) in ((ofp.OFPGC_ADD, False), (ofp.OFPGC_MODIFY, True)):
            if mod.type != ofp.OFPGT_SELECT:
                raise ModelError(f"group type {mod.type} is not modelled")
            self.groups[mod.group_id] = Group(mod.group_id, [check_actions(b.actions) for b in mod.buckets])
        else:
            raise ModelError(f"group-mod command {mod.command} on group {mod.group_id:#x} (exists: {exists})")

    # --- processing ---

    @staticmethod
    def packet(fields: dict[str, Any], in_port: int | None = None) -> dict[str, int]:
        """Normalise a packet: ints, metadata (registers, ct_*) zero, nw_ttl 64 unless given."""
        pkt = dict(METADATA, **{n: value_of(n, v) for n, v in fields.items()})
        if in_port is not None:
            pkt["in_port"] = in_port
        if "in_port" not in pkt:
            raise ModelError("a packet needs an in_port")
        if pkt.get("eth_type") == 0x0800:
            pkt.setdefault("nw_ttl", 64)
        return pkt

    def process(self, packet: dict[str, Any], in_port: int | None = None) -> Result:
        """Where ``packet`` arriving on ``in_port`` leaves, starting at table 0."""
        return self._start(self.packet(packet, in_port), [parser.OFPActionOutput(ofp.OFPP_TABLE)])

    def packet_out(self, po: PacketOut) -> Result:
        """Run a controller's packet-out; output TABLE goes through the pipeline from table 0."""
        return self._start(self.packet(fields_of(po.data), po.in_port), po.actions)

    def _start(self, pkt: dict[str, int], actions: list) -> Result:
        result = Result([], [], pkt)
        try:
            for a in actions:
                if isinstance(a, parser.OFPActionOutput) and a.port == ofp.OFPP_TABLE:
                    self._table(0, pkt, result, 0)
                else:
                    self._run(check_actions([a]), pkt, result, 0, 0)
        except _TtlExpired:
            pass
        return result

    def _lookup(self, table_id: int, pkt: dict[str, int]) -> Flow | None:
        hits = [f for f in self.tables.get(table_id, []) if f.match.matches(pkt)]
        top = [f for f in hits if f.priority == max(h.priority for h in hits)]
        if len(top) > 1:
            raise ModelError(f"table {table_id}: {len(top)} flows match at priority {top[0].priority}: "
                             "which one a switch picks is undefined")
        return top[0] if top else None  # a miss drops (OpenFlow 1.3)

    def _table(self, table_id: int, pkt: dict[str, int], result: Result, depth: int) -> None:
        if depth > self.MAX_DEPTH:
            raise ModelError("resubmit or recirculation loop")
        flow = self._lookup(table_id, pkt)
        if flow is None:
            return
        result.trace.append(Hit(table_id, flow.priority, flow.cookie))
        self._run(flow.actions, pkt, result, flow.cookie, depth)
        if flow.goto is not None:
            self._table(flow.goto, pkt, result, depth + 1)

    def _run(self, actions: list, pkt: dict[str, int], result: Result, cookie: int, depth: int) -> None:
        for a in actions:
            if isinstance(a, parser.OFPActionOutput):
                self._output(a.port, pkt, result, cookie)
            elif isinstance(a, parser.OFPActionSetField):
                pkt[a.key] = value_of(a.key, a.value)
            elif isinstance(a, parser.NXActionRegMove):
                _write(pkt, a.dst_field, _read(pkt, a.src_field, a.src_ofs, a.n_bits), a.dst_ofs, a.n_bits)
            elif isinstance(a, parser.NXActionRegLoad):
                _write(pkt, a.dst, a.value, *_ofs_nbits(a))
            elif isinstance(a, parser.OFPActionDecNwTtl):
                if _read(pkt, "nw_ttl") <= 1:
                    raise _TtlExpired()  # OVS drops it (a packet-in only if the controller asked)
                pkt["nw_ttl"] -= 1
            elif isinstance(a, parser.OFPActionGroup):
                self._group(self.groups[a.group_id], pkt, result, cookie, depth)
            elif isinstance(a, parser.NXActionResubmitTable):
                self._table(a.table_id, pkt, result, depth + 1)
            elif isinstance(a, parser.NXActionCT):
                self._ct(a, pkt, result, depth)
            elif isinstance(a, parser.NXActionLearn):
                self._learn(a, pkt)
            else:
                raise ModelError(f"the model does not know the action {type(a).__name__}")

    def _output(self, port: int, pkt: dict[str, int], result: Result, cookie: int) -> None:
        if port == ofp.OFPP_IN_PORT:
            port = pkt["in_port"]
        elif port in PORT_NAMES:
            port = PORT_NAMES[port]
        elif port == pkt["in_port"]:
            return  # OpenFlow never sends a packet back out its ingress port unless told IN_PORT
        elif port > ofp.OFPP_MAX:
            raise ModelError(f"output to port {port:#x} is not modelled")
        result.outputs.append(Output(port, dict(pkt), cookie))

    def _group(self, group: Group, pkt: dict[str, int], result: Result, cookie: int, depth: int) -> None:
        """A group's buckets work on copies of the packet (OVS saves and restores the flow)."""
        if not group.buckets:
            return  # no bucket: the packet goes nowhere
        pick = (self.bucket_for(group.group_id, dict(pkt)) if self.bucket_for
                else default_bucket(group.group_id, pkt, len(group.buckets)))
        if not 0 <= pick < len(group.buckets):
            raise ModelError(f"bucket_for picked bucket {pick} of {len(group.buckets)}")
        self._run(group.buckets[pick], dict(pkt), result, cookie, depth + 1)

    def _learn(self, a: parser.NXActionLearn, pkt: dict[str, int]) -> None:
        """learn(): a flow in ``a.table_id`` whose match and loads take their values from the
        packet (or constants), added as a flow-mod would be (one with the same match and
        priority is replaced). Timeouts are not modelled."""
        match: dict[str, tuple[int, int]] = {}
        actions = []
        for spec in a.specs:
            value = spec.src if isinstance(spec.src, int) else _read(pkt, _oxm(spec.src[0]), spec.src[1], spec.n_bits)
            field, ofs = _oxm(spec.dst[0]), spec.dst[1]
            if isinstance(spec, parser.NXFlowSpecMatch):
                old_value, old_mask = match.get(field, (0, 0))
                bits_mask = ((1 << spec.n_bits) - 1) << ofs
                match[field] = (old_value | (value << ofs), old_mask | bits_mask)
            else:
                actions.append(parser.NXActionRegLoad(ofs_nbits=(ofs << 6) | (spec.n_bits - 1), dst=field, value=value))
        mod = parser.OFPFlowMod(datapath=None, cookie=a.cookie, table_id=a.table_id, command=ofp.OFPFC_ADD,
                                priority=a.priority, match=parser.OFPMatch(**match),
                                instructions=[parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)])
        self._flow_mod(mod)

    def _ct(self, a: parser.NXActionCT, pkt: dict[str, int], result: Result, depth: int) -> None:
        """Track (and commit, running exec() on the mark), then recirculate a copy with the
        connection's state into ``recirc_table``; the original carries on with the next action."""
        zone = a.zone_ofs_nbits
        state, mark = self.conntrack.track(pkt, zone)
        nat = next((e for e in a.actions if isinstance(e, parser.NXActionNAT)), None)
        if a.flags & CT_COMMIT:
            scratch = dict(pkt, ct_mark=mark)
            self._run([e for e in a.actions if e is not nat], scratch, result, 0, depth)
            mark = scratch["ct_mark"]
            snat = value_of("ipv4_src", nat.range_ipv4_min) if nat is not None and nat.flags & NAT_SRC else None
            self.conntrack.commit(pkt, zone, mark, snat)
        if nat is not None:
            pkt = self.conntrack.translate(pkt, zone)
        if a.recirc_table != NO_RECIRC:
            self._table(a.recirc_table, dict(pkt, ct_state=state, ct_mark=mark, ct_zone=zone), result, depth + 1)


def _read(pkt: dict[str, int], name: str, ofs: int = 0, n_bits: int | None = None) -> int:
    if name not in pkt:
        raise ModelError(f"the packet has no {name} to read")
    return (pkt[name] & _span(name, ofs, bits(name) if n_bits is None else n_bits)) >> ofs


def _write(pkt: dict[str, int], name: str, value: int, ofs: int, n_bits: int) -> None:
    mask = _span(name, ofs, n_bits)
    pkt[name] = (pkt.get(name, 0) & ~mask) | ((value << ofs) & mask)


def _parse(buf: bytes) -> Any:
    """A serialised message: a flow-mod (os-ken's parser), a packet-out, an ONF bundle message
    (control: None; add: its inner message)."""
    version, msg_type, length, xid = struct.unpack_from("!BBHI", buf)
    if version != ofp.OFP_VERSION:
        raise ModelError(f"OpenFlow version {version} is not modelled")
    if msg_type == ofp.OFPT_FLOW_MOD:
        return parser.OFPFlowMod.parser(None, version, msg_type, length, xid, buf)
    if msg_type == ofp.OFPT_PACKET_OUT:
        _, in_port, actions_len = struct.unpack_from("!IIH", buf, 8)
        actions, offset = [], 24
        while offset < 24 + actions_len:
            actions.append(parser.OFPAction.parser(buf, offset))
            offset += actions[-1].len
        return PacketOut(in_port, actions, buf[offset:length])
    if msg_type == ofp.OFPT_EXPERIMENTER:
        experimenter, exp_type = struct.unpack_from("!II", buf, 8)
        if (experimenter, exp_type) == (ONF_EXPERIMENTER, ONF_BUNDLE_CONTROL):
            return None
        if (experimenter, exp_type) == (ONF_EXPERIMENTER, ONF_BUNDLE_ADD):
            return _parse(buf[24:length])
    raise ModelError(f"OpenFlow message type {msg_type} is not modelled")
