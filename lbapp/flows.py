"""Explain an ``ovs-ofctl dump-flows`` text: each flow by pipeline stage and owner (VIP, backend,
route, gateway, session), sessions as client -> VIP -> backend, foreign flows apart; and an
``ovs-ofctl dump-groups`` text: each ``selection: switch`` VIP's slots per backend.

Parsing stands on the ``ovs`` package's flow parser (``ovs.flow.ofp.OFPFlow``); ownership comes
from the cookie (:mod:`lbapp.pipeline.cookies`), names from the config when one is given.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from ovs.flow.ofp import OFPFlow

from lbapp import mac as macs
from lbapp.config import Config
from lbapp.pipeline import cookies
from lbapp.pipeline.context import Context
from lbapp.pipeline.tables import BY_STAGE, PIPELINE, Table, group_vip

# ovs-ofctl headers and blank lines are not flows
_NOT_A_FLOW = re.compile(r"^\s*$|^(OFPST_FLOW|NXST_FLOW)")


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
        return {"stages": {k: [asdict(f) for f in v] for k, v in self.stages.items()},
                "sessions": [asdict(s) for s in self.sessions],
                "foreign": [asdict(f) for f in self.foreign], "unparsed": self.unparsed}


class Namer:
    """Turns cookie ids back into config names; without a config, plain ids."""

    def __init__(self, cfg: Config | None) -> None:
        self.cfg = cfg
        self.ctx = Context(cfg) if cfg else None
        self.scheme = self.ctx.scheme if self.ctx else macs.ComputedScheme()
        self.backend_by_id = self.ctx.backend_by_id if self.ctx else {}

    def vip(self, vip_id: int) -> str:
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
        namers = {"gateway": lambda: self.gateway(c.obj), "vip": lambda: self.vip(c.vip),
                  "route": lambda: self.route(c.obj), "backend": lambda: self.backend(c.obj),
                  "fabricated": lambda: self.fabricated_owner(c.obj), "session": lambda: f"session {c.obj}",
                  "vip_or_balancer": lambda: self.vip(c.vip) if c.vip else "balancer address",
                  "vip_backend": lambda: f"{self.vip(c.vip)} / {self.backend(c.obj)}"}
        if kind not in namers:
            raise ValueError(f"no owner kind {kind!r} (a table declaration names it)")
        return namers[kind]()

    def backend_of_mac(self, mac: int) -> str:
        try:
            return str(self.scheme.decode(mac))
        except macs.MacError:
            return "?"


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


def _session(flow: Flow, parsed: OFPFlow, namer: Namer, c: cookies.Cookie) -> Session:
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
    vip_name = namer.vip(c.vip)
    return Session(session_id=c.obj, client=client,
                   vip=vip_name if namer.cfg else f"{vip_addr}",
                   backend=namer.backend_of_mac(fab) if fab is not None else "?",
                   fabricated_mac=macs.format_mac(fab) if fab is not None else "?",
                   packets=flow.packets, bytes=flow.bytes, idle_age=flow.idle_age, duration=flow.duration)


def explain(text: str, cfg: Config | None = None) -> Explanation:
    namer = Namer(cfg)
    out = Explanation(stages={t.name: [] for t in PIPELINE})
    for line in text.splitlines():
        if _NOT_A_FLOW.match(line):
            continue
        try:
            parsed = OFPFlow(line)
            flow = _flow(parsed)
        except Exception:  # noqa: BLE001 - a line the parser does not know is reported, not fatal
            out.unparsed.append(line.strip())
            continue
        c = cookies.decode(int(flow.cookie, 16))
        table = BY_STAGE.get(c.stage) if c else None
        if c is None or table is None or table.table_id != flow.table:
            out.foreign.append(flow)
            continue
        flow.stage, flow.role = table.name, role_of(table, flow.priority)
        flow.owner = owner_of(namer, table, flow.role, c)
        out.stages[table.name].append(flow)
        if table.name == "session" and flow.role == "connection":
            out.sessions.append(_session(flow, parsed, namer, c))
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


_VOLATILE = re.compile(r"\b(duration|n_packets|n_bytes|idle_age|hard_age)=[^ ,]+,? ?")


def normalize(text: str, sessions: bool = True) -> str:
    """A dump reduced to what a pipeline change would alter: counters, durations and ages
    dropped, the cookie's generation and session ids blanked, lines sorted. ``sessions=False``
    leaves out per-connection flows (when ECMP decides which balancer gets a connection)."""
    lines = []
    for line in text.splitlines():
        if _NOT_A_FLOW.match(line):
            continue
        line = _VOLATILE.sub("", line.strip())
        match = re.search(r"cookie=(0x[0-9a-f]+)", line)
        if match:
            value = int(match.group(1), 16)
            c = cookies.decode(value)
            if c is not None:
                value &= ~cookies.GEN_MASK
                shown = f"{value:#x}"
                # per-connection flows carry generation 0 (static ones, like the pins, 1..255)
                per_connection = c.stage == cookies.STAGE_SESSION and c.generation == 0 and c.obj
                if per_connection and not sessions:
                    continue
                if per_connection:
                    # a session: its id and the client's ephemeral port vary from run to run
                    shown = f"{value & ~cookies.OBJECT_MASK:#x}+session"
                    line = re.sub(r"\b(tp_src|tcp_src|udp_src)=\d+", r"\1=*", line)
                line = line.replace(match.group(0), f"cookie={shown}")
        lines.append(line)
    return "\n".join(sorted(lines)) + "\n"

