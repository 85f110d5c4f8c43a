"""Explain an ``ovs-ofctl dump-flows`` text: each flow by pipeline stage and owner (VIP, backend,
route, gateway, session), sessions as client -> VIP -> backend, foreign flows apart; and an
``ovs-ofctl dump-groups`` text: each ``selection: switch`` VIP's slots per backend.

Parsing stands on the ``ovs`` package's flow parser (``ovs.flow.ofp.OFPFlow``), with a fast path for
per-connection session flows (see ``_SESSION_LINE``); ownership comes from the cookie
(:mod:`lbapp.pipeline.cookies`), names from the config when one is given.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ovs.flow.ofp import OFPFlow

from lbapp import mac as macs
from lbapp.config import Config
from lbapp.pipeline import cookies
from lbapp.pipeline.context import Context
from lbapp.pipeline.tables import BY_STAGE, PIPELINE, Table, group_vip
from lbapp.reference import NOT_A_FLOW as _NOT_A_FLOW
from lbapp.reference import denormalized as _denormalized
from lbapp.reference import normalize  # noqa: F401 (lbapp.flows.normalize: the CLI's and the tests')

# ovs-ofctl headers and blank lines are not flows


@dataclass
class Flow:
    table: int
    priority: int
    cookie: str
    match: str
    actions: str
    packets: int | None
    bytes: int | None
    duration: float | None
    idle_age: float | None
    idle_timeout: float | None
    stage: str | None = None
    role: str | None = None  # the priority's name in the table declaration
    owner: str = ""


@dataclass
class Session:
    session_id: int
    client: str
    vip: str
    backend: str
    fabricated_mac: str
    packets: int | None
    bytes: int | None
    idle_age: float | None
    duration: float | None


@dataclass
class Explanation:
    stages: dict[str, list[Flow]] = field(default_factory=dict)
    sessions: list[Session] = field(default_factory=list)
    foreign: list[Flow] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        # what asdict gives for these flat records (scalar fields, in field order), 10x faster
        return {"stages": {k: [dict(vars(f)) for f in v] for k, v in self.stages.items()},
                "sessions": [dict(vars(s)) for s in self.sessions],
                "foreign": [dict(vars(f)) for f in self.foreign], "unparsed": self.unparsed}


class Namer:
    """Turns cookie ids back into config names; without a config, plain ids."""

    def __init__(self, cfg: Config | None) -> None:
        self.cfg = cfg
        self.ctx = Context(cfg) if cfg else None
        self.scheme = self.ctx.scheme if self.ctx else macs.ComputedScheme()
        self.backend_by_id = self.ctx.backend_by_id if self.ctx else {}
        # built once: a dump can hold 100k session flows, each named through here
        self._kinds: dict[str, Callable[[cookies.Cookie], str]] = {
            "gateway": lambda c: self.gateway(c.obj), "vip": lambda c: self.vip(c.vip),
            "route": lambda c: self.route(c.obj), "backend": lambda c: self.backend(c.obj),
            "fabricated": lambda c: self.fabricated_owner(c.obj), "session": lambda c: f"session {c.obj}",
            "vip_or_balancer": lambda c: self.vip(c.vip) if c.vip else "balancer address",
            "vip_backend": lambda c: f"{self.vip(c.vip)} / {self.backend(c.obj)}",
            "affinity": lambda c: f"persistence of {self.vip(c.vip)}"}
        self._macs: dict[int, tuple[str, str]] = {}
        self._vips: dict[int, str] = {}

    def vip(self, vip_id: int) -> str:
        # cached: each session names its VIP, and formatting an address is slow
        name = self._vips.get(vip_id)
        if name is None:
            name = self._vips[vip_id] = self._vip(vip_id)
        return name

    def _vip(self, vip_id: int) -> str:
        if vip_id == cookies.LINGER_VIP:
            return "lingering (backend left the config, sessions live)"
        if self.cfg and 0 < vip_id <= len(self.cfg.vips):
            v = self.cfg.vips[vip_id - 1]
            return f"VIP {v.name} {v.ip}:{v.port}/{v.protocol}"
        return f"VIP #{vip_id}"

    def gateway(self, obj: int) -> str:
        if self.cfg and 0 < obj <= len(self.cfg.gateways):
            g = self.cfg.gateways[obj - 1]
            return f"gateway {g.name} {g.ip}"
        return f"gateway #{obj}"

    def route(self, obj: int) -> str:
        if self.cfg and 0 < obj <= len(self.cfg.routes):
            r = self.cfg.routes[obj - 1]
            return f"route {r.dst} via {r.via}"
        return f"route #{obj}"

    def backend(self, obj: int) -> str:
        ip = self.backend_by_id.get(obj)
        return f"backend {ip}" if ip else f"backend #{obj}"

    def fabricated_owner(self, obj: int) -> str:
        """Computed MACs are installed per route, the MAC table per backend."""
        return self.route(obj) if self.scheme.kind == "computed" else self.backend(obj)

    def name(self, kind: str, c: cookies.Cookie) -> str:
        """The owner of kind ``kind`` (a Table.owners value) that cookie ``c`` names."""
        namer = self._kinds.get(kind)
        if namer is None:
            raise ValueError(f"no owner kind {kind!r} (a table declaration names it)")
        return namer(c)

    def backend_of_mac(self, mac: int) -> str:
        try:
            return str(self.scheme.decode(mac))
        except macs.MacError:
            return "?"

    def mac_shown(self, mac: int) -> tuple[str, str]:
        """(backend, MAC text) of a fabricated MAC; cached, sessions share a few backends."""
        shown = self._macs.get(mac)
        if shown is None:
            shown = self._macs[mac] = (self.backend_of_mac(mac), macs.format_mac(mac))
        return shown


def role_of(table: Table, priority: int) -> str | None:
    for name, band in table.priorities.items():
        if band == priority or (isinstance(band, tuple) and band[0] <= priority <= band[1]):
            return name
    return None


def owner_of(namer: Namer, table: Table, role: str | None, c: cookies.Cookie) -> str:
    """A flow's owner, named the way its table's declaration says (``Table.owners``)."""
    if role == "miss":
        return "table miss"
    if c.vip == cookies.LINGER_VIP:
        return f"{namer.vip(c.vip)} / backend {ipaddress.IPv4Address(c.obj)}"
    kind = table.owners.get(role or "", "")
    if kind.startswith("="):
        return kind[1:]
    return namer.name(kind, c) if kind else ""


def _flow(f: OFPFlow) -> Flow:
    info, match = f.info, f.match
    text = {s.name: s.string.strip() for s in f.sections}
    return Flow(table=info.get("table", 0), priority=match.get("priority", 32768), cookie=hex(info.get("cookie", 0)),
                match=re.sub(r"^priority=\d+,?", "", text.get("match", "")), actions=text.get("actions", ""),
                packets=info.get("n_packets"), bytes=info.get("n_bytes"), duration=info.get("duration"),
                idle_age=info.get("idle_age"), idle_timeout=info.get("idle_timeout"))


# A connection's (client, VIP address, fabricated MAC) as its session flow gives them.
Endpoints = tuple[str, str, int | None]


def _ofp_endpoints(parsed: OFPFlow) -> Endpoints:
    m = parsed.match
    fab = None
    for action in parsed.actions:
        if "set_field" in action and "eth_dst" in action["set_field"]["value"]:
            fab = int(action["set_field"]["value"]["eth_dst"].eth)
        elif "mod_dl_dst" in action:
            fab = int(action["mod_dl_dst"].eth)
    sport = m.get("tp_src") or m.get("tcp_src") or m.get("udp_src")
    dport = m.get("tp_dst") or m.get("tcp_dst") or m.get("udp_dst")
    client = f"{m['nw_src'].ip}:{int(sport.value)}" if "nw_src" in m and sport else "?"
    vip_addr = f"{m['nw_dst'].ip}:{int(dport.value)}" if "nw_dst" in m and dport else "?"
    return client, vip_addr, fab


# The fast path. A busy balancer's dump is nearly all per-connection session flows, and
# ovs-ofctl prints them all in one shape (OpenFlow 1.3: flags, set_field; OpenFlow 1.0 with
# Nicira stats: idle_age, mod_dl_dst): one anchored expression reads those ~20x faster than
# OFPFlow. It takes only text OFPFlow reads to the very same values (canonical numbers, dotted
# quads, lowercase MACs, the fields OVS prints, in its order); any other line goes to OFPFlow.
_INT = r"(?:0|[1-9][0-9]*)"  # OFPFlow's int(v, 0) refuses leading zeros
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IP = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_MAC = r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}"
_SESSION_LINE = re.compile(
    rf" *cookie=(?P<cookie>0x[0-9a-f]+), duration=(?P<duration>[0-9]+(?:\.[0-9]+)?)s, table=(?P<table>{_INT}), "
    rf"n_packets=(?P<packets>{_INT}), n_bytes=(?P<bytes>{_INT}), "
    rf"(?:idle_timeout=(?P<idle_timeout>[0-9]+), )?(?:hard_timeout=[0-9]+, )?"
    # OFPFlow fails on a flag followed by more info ("send_flow_rem idle_age=3,"): not taken here
    rf"(?:send_flow_rem |(?:idle_age=(?P<idle_age>[0-9]+), )?(?:hard_age=[0-9]+, )?)"
    rf"priority=(?P<priority>{_INT}),(?P<match>(?:tcp|udp),nw_src=(?P<src>{_IP}),nw_dst=(?P<dst>{_IP}),"
    rf"tp_src=(?P<sport>{_INT}),tp_dst=(?P<dport>{_INT})) "
    rf"actions=(?P<actions>(?:set_field:(?P<mac>{_MAC})->eth_dst|mod_dl_dst:(?P<mac10>{_MAC})),"
    rf"(?:goto_table:{_INT}|resubmit\(,{_INT}\))) *")
_PORT_MAX = 0xFFFF  # OFPFlow refuses a wider port


def _fast_parse(line: str) -> tuple[Flow, re.Match] | None:
    """A session flow line read by ``_SESSION_LINE``: the Flow OFPFlow would give; None when
    the line is not in that shape."""
    m = _SESSION_LINE.fullmatch(line)
    if m is None:
        return None
    (cookie, duration, table, packets, n_bytes, idle_timeout, idle_age, priority, match, _, _, sport, dport,
     actions, _, _) = m.groups()
    if int(sport) > _PORT_MAX or int(dport) > _PORT_MAX:
        return None
    flow = Flow(table=int(table), priority=int(priority), cookie=hex(int(cookie, 16)), match=match,
                actions=actions, packets=int(packets), bytes=int(n_bytes), duration=float(duration),
                idle_age=None if idle_age is None else float(idle_age),
                idle_timeout=None if idle_timeout is None else float(idle_timeout))
    return flow, m


def _reference_parse(line: str) -> tuple[Flow, OFPFlow] | None:
    """Any line, read by the ``ovs`` package; None when it cannot."""
    try:
        parsed = OFPFlow(line)
        return _flow(parsed), parsed
    except Exception:  # noqa: BLE001 - a line the parser does not know is reported, not fatal
        return None


def _endpoints(source: re.Match | OFPFlow) -> Endpoints:
    if isinstance(source, re.Match):
        mac = source["mac"] or source["mac10"]
        return f"{source['src']}:{source['sport']}", f"{source['dst']}:{source['dport']}", int(mac.replace(":", ""), 16)
    return _ofp_endpoints(source)


def _session(flow: Flow, endpoints: Endpoints, namer: Namer, c: cookies.Cookie) -> Session:
    client, vip_addr, fab = endpoints
    backend, fabricated_mac = namer.mac_shown(fab) if fab is not None else ("?", "?")
    return Session(session_id=c.obj, client=client, vip=namer.vip(c.vip) if namer.cfg else vip_addr,
                   backend=backend, fabricated_mac=fabricated_mac,
                   packets=flow.packets, bytes=flow.bytes, idle_age=flow.idle_age, duration=flow.duration)


def explain(text: str, cfg: Config | None = None) -> Explanation:
    """A dump (``ovs-ofctl dump-flows``, or :func:`normalize`'s) explained stage by stage."""
    namer = Namer(cfg)
    out = Explanation(stages={t.name: [] for t in PIPELINE})
    roles: dict[tuple[str, int], str | None] = {}
    normalized = 0
    for line in text.splitlines():
        if _NOT_A_FLOW.match(line):
            continue
        line, was_normalized = _denormalized(line, normalized + 1)
        normalized += was_normalized
        parsed = _fast_parse(line) or _reference_parse(line)
        if parsed is None:
            out.unparsed.append(line.strip())
            continue
        flow, source = parsed
        c = cookies.decode(int(flow.cookie, 16))
        table = BY_STAGE.get(c.stage) if c else None
        if c is None or table is None or table.table_id != flow.table:
            out.foreign.append(flow)
            continue
        role_key = (table.name, flow.priority)
        if role_key not in roles:
            roles[role_key] = role_of(table, flow.priority)
        flow.stage, flow.role = table.name, roles[role_key]
        flow.owner = owner_of(namer, table, flow.role, c)
        out.stages[table.name].append(flow)
        if table.name == "session" and flow.role == "connection":
            session = _session(flow, _endpoints(source), namer, c)
            if was_normalized:  # its id and client port were blanked: say so rather than invent them
                session.client = session.client.rsplit(":", 1)[0] + ":*"
            out.sessions.append(session)
    out.stages = {k: v for k, v in out.stages.items() if v}
    return out


@dataclass
class Group:
    group_id: int
    owner: str  # the VIP, or "not lbapp's"
    kind: str
    slots: dict[str, int]  # backend -> buckets (slots) it holds


_GROUP_ID = re.compile(r"group_id=(\d+)")
_GROUP_TYPE = re.compile(r"type=(\w+)")
_BUCKET_MAC = re.compile(r"set_field:([0-9a-f:]{17})->eth_dst")


def explain_groups(text: str, cfg: Config | None = None) -> list[Group]:
    """The groups of a dump-groups text; for lbapp's, the slots each backend holds (a bucket's
    backend is the fabricated MAC it sets)."""
    namer = Namer(cfg)
    out = []
    for line in text.splitlines():
        found = _GROUP_ID.search(line)
        if not found:
            continue
        group_id = int(found.group(1))
        vip_id = group_vip(group_id)
        kind = _GROUP_TYPE.search(line)
        slots: dict[str, int] = {}
        for bucket in line.split("bucket=")[1:]:
            mac = _BUCKET_MAC.search(bucket)
            backend = namer.backend_of_mac(macs.parse_mac(mac.group(1))) if mac else "?"
            slots[backend] = slots.get(backend, 0) + 1
        out.append(Group(group_id, namer.vip(vip_id) if vip_id else "not lbapp's", kind.group(1) if kind else "?",
                         dict(sorted(slots.items()))))
    return out
