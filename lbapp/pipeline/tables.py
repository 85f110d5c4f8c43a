"""The pipeline, declared once as data.

Every flow lbapp installs is built through :meth:`Table.flow`, which refuses a flow that breaks
its table's declaration (a match field, priority or next table the table does not declare).
Table ids are fixed and sparse so ``table=N`` in a dump always means the same stage; the stage
code goes into every cookie (see :mod:`lbapp.pipeline.cookies`), so ``lbapp flows`` and the
cleanup on reconnect are derived from this one list.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from lbapp.pipeline import cookies


class PipelineError(ValueError):
    """A flow that does not fit its table's declaration."""


# Registers, each named once with what it holds.
REG_ARP_SWAP = "reg0"  # scratch: the ARP target IP while the in-switch responder swaps spa/tpa
REG_PICKED = "reg1"  # the backend a select-group bucket picked (its IPv4 address), for the pin stage
REG_PERSIST = "reg2"  # a persistent VIP's persistence id (its group's lowest VIP id), while it is looked up
REG_KNOWN = "reg3"  # bit 0: the client's persistence entry was found (reg1 and eth_dst then name its backend)
REG_PORT_SEEN = "reg4"  # scratch: a new client's source port, read so OVS caches its datapath flow per connection

# Groups: one select group per VIP whose backends the switch picks (``selection: switch``),
# its id lbapp's tag over the VIP's id, so ``dump-groups`` shows whose it is.
GROUP_TAG = 0x1B000000


def vip_group_id(vip_id: int) -> int:
    return GROUP_TAG | vip_id


def group_vip(group_id: int) -> int | None:
    """The VIP id of one of lbapp's groups; None for a group that is not lbapp's."""
    vip_id = group_id & cookies.MAX_VIPS
    return vip_id if group_id == GROUP_TAG | vip_id else None


# Meters: the one on the balancer's flows that send a new connection's first packet to the
# controller, at balancer.punt_limit packets per second (a SYN flood then costs the controller
# no more than that), and the probe stage's two (answers, unreachables).
METER_PUNT = 0x1B
METER_PROBE = 0x1C
METER_UNREACHABLE = 0x1D  # the probe stage's ICMP unreachables, at a tenth of balancer.probe_limit


# Conntrack: connections the switch picked for are committed in this zone with their backend's
# IPv4 address as ct_mark, so a connection stays on its backend when the slots move. (The commit
# happens in the pin stage: OVS runs group buckets as action sets, which drop ct().)
CT_ZONE = 0x1B
CT_TRACKED = 0x20  # the ct_state bit "+trk"
# Hairpin (a backend calling a VIP of its own and picked for itself): its edge switch commits the
# connection in this zone with the VIP as source (nat), and translates the replies back.
CT_ZONE_HAIRPIN = 0x1C
# Connections a `pin: conntrack` VIP's controller picked carry its current epoch in ct_label:
# the first packet of a connection in an epoch re-commits it with the new value, and that flow's
# packet counter then counts the connections the switch saw in the epoch (lbapp.state.pinned).
# 0: committed by the pick, not seen since.
CT_EPOCH_BITS = 32


@dataclass(frozen=True)
class Table:
    """One stage of the pipeline as declared: its id and cookie stage, the match fields, priorities
    and next tables it allows, its miss, and the roles that have it."""

    name: str
    table_id: int
    stage: int  # the cookie's stage code
    doc: str
    match_fields: frozenset[str]
    priorities: dict[str, int | tuple[int, int]]  # name -> fixed priority or inclusive range
    next_tables: tuple[str, ...] = ()
    miss: str = "drop"  # "drop" | "normal"
    session_owned: bool = False  # flows of this table are per-connection, never swept on reconnect
    flows_doc: tuple[str, ...] = field(default=())
    # the switch roles ("balancer", "edge") whose pipeline has this table; its builder is the
    # module lbapp.pipeline.<name>, with a <role>_flows(view) function per role
    roles: tuple[str, ...] = ("balancer",)
    optional: bool = False  # present (with its miss flow) only when its builder gives it flows
    # how each flow family's owner is named (by lbapp flows): a kind lbapp.flows.Namer knows
    # ("gateway", "vip", "route", "backend", ...), or "=text" for a fixed label
    owners: dict[str, str] = field(default_factory=dict)

    def priority(self, name: str, offset: int = 0) -> int:
        try:
            band = self.priorities[name]
        except KeyError:
            raise PipelineError(f"table {self.name} declares no priority {name!r}") from None
        if isinstance(band, int):
            if offset:
                raise PipelineError(f"table {self.name} priority {name!r} is fixed; got offset {offset}")
            return band
        low, high = band
        if not low <= low + offset <= high:
            raise PipelineError(f"table {self.name} priority {name!r}: {low}+{offset} outside {low}..{high}")
        return low + offset

    def flow(self, priority: str, match: dict[str, Any], *, cookie: int,
             actions: Sequence[Any] = (), goto: str | None = None, priority_offset: int = 0,
             idle_timeout: int = 0, hard_timeout: int = 0, send_flow_removed: bool = False,
             meter: int | None = None) -> parser.OFPFlowMod:
        """An OFPFlowMod (add) for this table, checked against the declaration; ``meter``: the
        meter its packets pass first."""
        unknown = set(match) - self.match_fields
        if unknown:
            raise PipelineError(f"table {self.name} does not match on {', '.join(sorted(unknown))}")
        if cookies.stage_of(cookie) != self.stage:
            raise PipelineError(f"table {self.name}: cookie {cookie:#x} belongs to stage "
                                f"{cookies.stage_of(cookie)}, not {self.stage}")
        instructions = [parser.OFPInstructionMeter(meter, ofp.OFPIT_METER)] if meter is not None else []
        if actions:
            instructions.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, list(actions)))
        if goto is not None:
            if goto not in self.next_tables:
                raise PipelineError(f"table {self.name} may not go to {goto!r} (next: {self.next_tables})")
            instructions.append(parser.OFPInstructionGotoTable(TABLES[goto].table_id))
        return parser.OFPFlowMod(
            datapath=None, cookie=cookie, table_id=self.table_id, command=ofp.OFPFC_ADD,
            idle_timeout=idle_timeout, hard_timeout=hard_timeout,
            priority=self.priority(priority, priority_offset), buffer_id=ofp.OFP_NO_BUFFER,
            flags=ofp.OFPFF_SEND_FLOW_REM if send_flow_removed else 0,
            match=parser.OFPMatch(**match), instructions=instructions)

    def delete(self, match: dict[str, Any], *, cookie: int, cookie_mask: int,
               priority: str | None = None, priority_offset: int = 0) -> parser.OFPFlowMod:
        """Delete this table's flows that match ``match`` and the cookie under ``cookie_mask``
        (strict on priority when one is given), so an install's removal reuses its match."""
        unknown = set(match) - self.match_fields
        if unknown:
            raise PipelineError(f"table {self.name} does not match on {', '.join(sorted(unknown))}")
        strict = priority is not None
        return parser.OFPFlowMod(
            datapath=None, cookie=cookie, cookie_mask=cookie_mask, table_id=self.table_id,
            command=ofp.OFPFC_DELETE_STRICT if strict else ofp.OFPFC_DELETE,
            priority=self.priority(priority, priority_offset) if strict else 0,
            out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY, match=parser.OFPMatch(**match))

    def miss_flow(self, generation: int = 0) -> parser.OFPFlowMod:
        actions = [parser.OFPActionOutput(ofp.OFPP_NORMAL)] if self.miss == "normal" else []
        return self.flow("miss", {}, cookie=cookies.make(self.stage, generation=generation), actions=actions)


_ETH = {"in_port", "eth_type", "eth_src", "eth_dst"}
_ARP = {"arp_op", "arp_spa", "arp_tpa"}
_L4 = {"ip_proto", "ipv4_src", "ipv4_dst", "tcp_src", "tcp_dst", "udp_src", "udp_dst"}
_CT = {"ct_state", "ct_mark", "ct_label"}


PIPELINE: tuple[Table, ...] = (
    Table("classify", 0, cookies.STAGE_CLASSIFY,
          "Sort arriving frames: gateway ARP, ARP requests, VIP traffic, frames to fabricated MACs, "
          "replies from backends (edge switches); everything else is forwarded normally.",
          frozenset(_ETH | _ARP | {"ip_proto", "ipv4_src", "ipv4_dst", "tcp_dst", "udp_dst"}),
          {"gateway_arp": 400, "probe_answer": 350, "arp_request": 300, "fabricated": 250, "vip": 200,
           "backend_reply": 100, "miss": 0},
          next_tables=("arp_proxy", "probe", "session", "translate", "snat"), miss="normal",
          roles=("balancer", "edge"),
          owners={"gateway_arp": "gateway", "probe_answer": "=health probe answers", "arp_request": "=ARP requests",
                  "fabricated": "fabricated", "vip": "vip", "backend_reply": "backend"},
          flows_doc=(
              "for each gateway G, a priority-400 flow matching `arp, arp_spa=G` copies it to the "
              "controller (next-hop learning) and goes to arp_proxy",
              "with health checks, a priority-350 flow matching `ip, ipv4_dst=balancer` goes to probe",
              "a priority-300 flow matching `arp, arp_op=1` goes to arp_proxy",
              "for each backend route (computed MACs) or backend (MAC table), a priority-250 flow "
              "matching `ip, eth_dst=fabricated MAC range` goes to translate (external director)",
              "for each VIP it schedules, a priority-200 flow matching `ip, eth_dst=balancer, ip_proto, "
              "ipv4_dst=VIP, tp_dst=port` "
              "goes to session",
              "on edge switches, for each backend B, a priority-100 flow matching `ip, ipv4_src=B` "
              "goes to snat",
              "priority 0: NORMAL")),
    Table("arp_proxy", 10, cookies.STAGE_ARP_PROXY,
          "Answer ARP for the balancer's own address, its VIPs and the backends (with fabricated "
          "MACs), inside the switch or through the controller.",
          frozenset(_ETH | _ARP),
          {"probe_reply": 300, "own_address": 200, "backend": 100, "miss": 0},
          miss="normal",
          owners={"probe_reply": "=probe replies", "own_address": "vip_or_balancer", "backend": "fabricated"},
          flows_doc=(
              "a priority-300 flow matching `arp, arp_op=2, arp_tpa=balancer` drops it (the "
              "controller already has its copy)",
              "for the balancer's address and each VIP, a priority-200 flow matching "
              "`arp, arp_op=1, arp_tpa=IP` replies with balancer.mac out IN_PORT",
              "for each backend route (computed MACs, switch mode) a priority-100 flow matching "
              "`arp, arp_op=1, arp_tpa=ROUTE` builds the fabricated MAC from arp_tpa and replies; "
              "for each backend (MAC table) one replying with its MAC; in controller mode these "
              "flows punt to the controller, which answers with a packet-out",
              "priority 0: NORMAL")),
    Table("probe", 15, cookies.STAGE_PROBE,
          "Answers to health probes (sent from the balancer's own address) go to the controller "
          "(only on balancers whose config has a health check).",
          frozenset({"eth_type", "ip_proto", "ipv4_src", "tcp_dst", "udp_dst", "icmpv4_type"}),
          {"answer": 100, "miss": 0}, optional=True, owners={"answer": "=health probe answers"},
          flows_doc=(
              "for each checked backend and its VIP (an edge source-NATs the backend's replies) A, "
              "priority-100 flows matching `tcp, ipv4_src=A, tcp_dst=49152/0xe000`, `udp, ipv4_src=A, "
              "udp_dst=49152/0xe000` (the probes' source ports) and `icmp, ipv4_src=A, icmp_type=0` "
              "(echo reply) send the answer to the controller through the probe meter "
              "(balancer.probe_limit per second)",
              "a priority-100 flow matching `icmp, icmp_type=3` (unreachable, from any router) does "
              "the same through a meter of its own (a tenth of probe_limit)",
              "priority 0: drop")),
    Table("session", 20, cookies.STAGE_SESSION,
          "Per-connection translation rules: pin each connection to the backend its scheduler chose.",
          frozenset(_ETH | _L4 | _CT | {"tcp_flags", REG_PERSIST, REG_KNOWN, REG_PICKED}),
          {"connection": 100, "pinned_seen": 31, "pinned": 30, "persisted": 25, "persisting": 22, "pick": 20,
           "no_session": 15, "new_connection": 10, "kept": 1, "miss": 0},
          next_tables=("pin", "translate"), session_owned=True,
          owners={"connection": "session", "pinned_seen": "vip", "pinned": "vip", "persisted": "vip",
                  "persisting": "vip", "pick": "vip", "no_session": "vip", "new_connection": "vip",
                  "kept": "=table kept"},
          flows_doc=(
              "for each live connection, a priority-100 flow matching its 5-tuple sets eth_dst to "
              "the backend's fabricated MAC and goes to translate; idle timeout from the VIP, "
              "flow-removed reported",
              "for each VIP, a priority-10 flow sends packets without a session through conntrack "
              "(zone 27) back to this table; a priority-30 flow per backend matching `ct_mark=backend IP` "
              "sets eth_dst to its fabricated MAC and goes to translate (a connection pinned in conntrack); for a "
              "`pin: conntrack` VIP it also re-commits the connection with the VIP's current epoch as ct_label "
              "(its packet counter counts the connections seen in the epoch), and a priority-31 copy matching "
              "`ct_label=epoch` takes the connection's later packets in the epoch without a commit",
              "for each VIP, a priority-20 flow takes a new connection's first packet (for TCP: a SYN "
              "without ACK, so its datapath flow does not catch the connection's later packets), and for "
              "TCP a priority-15 flow any other packet without a session: with `selection: "
              "controller` to the controller, through the punt meter (balancer.punt_limit per second), "
              "whose packet-out, for a `pin: conntrack` VIP, loads the backend into reg1 and resubmits to pin "
              "(no flow-mod per connection); "
              "with `selection: switch`, or a controller VIP while overloaded (over "
              "balancer.overload_above new connections per second), to the VIP's select group: OVS "
              "hashes the five-tuple (dp_hash) into one of 256 buckets, each loading its slot's backend "
              "IP into reg1, setting eth_dst to its fabricated MAC and resubmitting to pin; the "
              "controller keeps the slots",
              "for a persistent VIP (`persistence:`) the pick flows first look the client up in the "
              "affinity table (reg2 = its persistence id, resubmit to 60): the controller gets the frame "
              "with the entry's backend in eth_dst; where the switch picks, the packet comes back to this "
              "table: a priority-25 flow per backend B holding one of the VIP's slots, matching `reg2=P, "
              "reg3=1, reg1=B`, goes to pin (the entry's backend); a priority-22 flow matching `reg2=P` "
              "sends the rest to the VIP's select group, whose pick the pin stage learns; it first copies "
              "the source port into reg4, which makes OVS cache that step's datapath flow per connection: a "
              "client's second connection, opened at once, is looked up again and finds the entry the "
              "first one's learn() wrote",
              "a priority-1 flow matching `eth_type=0x88b5` (no VIP traffic) marks the table as kept: the "
              "controller adds it after reading the table back; a reading that does not find it means the "
              "switch lost its tables (a restart, a wipe, a flush), and the controller restores every "
              "connection it remembers",
              "priority 0: drop")),
    Table("pin", 25, cookies.STAGE_PIN,
          "Pin a new connection to the backend picked for it (by the switch's select group, or by the "
          "controller for a `pin: conntrack` VIP): commit it to conntrack with the backend as its mark.",
          frozenset({"eth_type", REG_PERSIST}),
          {"remember": 150, "commit": 100, "miss": 0},
          next_tables=("translate",), optional=True,
          flows_doc=(
              "for each persistence group P the switch picks for, a priority-150 flow matching `ip, "
              "reg2=P` does the same and learns the client's affinity entry (learn() into table 60)",
              "a priority-100 flow matching `ip` commits the connection in zone 27 with reg1 (the "
              "picked backend's IP) as ct_mark and goes to translate",
              "priority 0: drop")),
    Table("translate", 30, cookies.STAGE_TRANSLATE,
          "Address translation: recover the backend IP from the fabricated MAC into ipv4_dst.",
          frozenset(_ETH | {"ipv4_dst"}),
          {"fabricated": 100, "miss": 0},
          next_tables=("next_hop",), owners={"fabricated": "fabricated"},
          flows_doc=(
              "for each backend route (computed MACs), a priority-100 flow matching its fabricated "
              "MAC range moves the IP bits of eth_dst into ipv4_dst; for each backend (MAC table), "
              "one matching its MAC sets ipv4_dst; both go to next_hop",
              "priority 0: drop")),
    Table("next_hop", 40, cookies.STAGE_NEXT_HOP,
          "Learning / next hop: frame to the learned gateway MAC, source the balancer's MAC, "
          "decrement TTL, send toward the gateway. Unknown gateway: drop and count.",
          frozenset(_ETH | {"ipv4_dst"}),
          {"route": (100, 199), "miss": 0}, owners={"route": "route"},
          flows_doc=(
              "for each route R via gateway G with a learned MAC and port, flows at priority "
              "100+2*prefixlen (+1 for the variant matching in_port=G's port, which outputs "
              "IN_PORT) matching `ip, ipv4_dst=R` set eth_src=balancer, eth_dst=G's MAC, dec_ttl and "
              "output to G's port",
              "for each route whose gateway is not yet learned, the same priority drops (its "
              "counters count what was lost)",
              "priority 0: drop")),
    Table("snat", 50, cookies.STAGE_SNAT,
          "Edge source NAT: a backend's reply from its service port leaves with src = the VIP; a "
          "backend's own call to its VIP that came back to it arrives from the VIP (hairpin).",
          frozenset(_ETH | _L4 | _CT),
          {"hairpin": 200, "reply": 100, "miss": 0},
          miss="normal", roles=("edge",),
          owners={"hairpin": "vip_backend", "reply": "vip_backend"},
          flows_doc=(
              "for each (VIP, backend B on this edge), two priority-200 flows for hairpin, both matching "
              "`ct_state=-trk`: `ip, ip_proto, ipv4_src=B, ipv4_dst=B, tp_dst=port` (B's own call, "
              "picked for B) commits it in conntrack zone 28 with nat(src=VIP) and goes back to snat, "
              "then NORMAL takes it to B; `ip, ip_proto, ipv4_src=B, tp_src=port, ipv4_dst=VIP` (B's "
              "answer to it) goes through zone 28's nat back to snat, where the reply flow below gives "
              "it src=VIP on its way (through the router) to B",
              "for each (VIP, backend on this edge), a priority-100 flow matching "
              "`ip, ip_proto, ipv4_src=backend, tp_src=port` sets ipv4_src=VIP and outputs NORMAL",
              "for each (VIP, backend) the config no longer has while sessions to it live, the same flow "
              "(and its classify flow) under the lingering cookie, removed with the last session",
              "priority 0: NORMAL")),
    Table("affinity", 60, cookies.STAGE_AFFINITY,
          "Client persistence entries: a client (its address under the netmask) of a persistence "
          "group and the backend its connections go to, kept while it opens new ones within the "
          "timeout. Looked up (resubmit) by a persistent VIP's new connections.",
          frozenset({"eth_type", "ipv4_src", REG_PERSIST}),
          {"entry": 100, "none": 1, "miss": 0}, session_owned=True, optional=True,
          owners={"entry": "affinity", "none": "affinity"},
          flows_doc=(
              "for each client C (masked) of persistence group P with backend B, a priority-100 flow matching "
              "`ip, reg2=P, ipv4_src=C/netmask` sets eth_dst to B's fabricated MAC, reg1=B, reg3=1; idle "
              "timeout: the persistence's. Learned by the switch (pin stage) for its picks, installed by "
              "the controller for its own; generation 0: reloads and restarts leave them",
              "for each persistence group P, a priority-1 flow matching `ip, reg2=P` does nothing: reg3 "
              "stays 0 (its counter counts lookups that found no entry: new clients); priority 0: drop")),
)

TABLES: dict[str, Table] = {t.name: t for t in PIPELINE}
BY_ID: dict[int, Table] = {t.table_id: t for t in PIPELINE}
BY_STAGE: dict[int, Table] = {t.stage: t for t in PIPELINE}

ROLES = ("balancer", "edge")


def tables_on(role: str) -> tuple[Table, ...]:
    """The tables a switch of ``role`` has, in pipeline order."""
    return tuple(t for t in PIPELINE if role in t.roles)


def route_priority_offset(prefixlen: int, on_gateway_port: bool) -> int:
    """Longest prefix first; the in_port variant just above its route."""
    return 2 * prefixlen + (1 if on_gateway_port else 0)


def pipeline_doc() -> str:
    """The pipeline in OVN's documentation shape, generated from the declaration."""
    lines = []
    for t in PIPELINE:
        lines.append(f"Table {t.table_id}: {t.name}\n\n{t.doc}\n")
        lines.extend(f"- {d}" for d in t.flows_doc)
        lines.append("")
    return "\n".join(lines)
