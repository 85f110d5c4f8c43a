"""``ovs-appctl ofproto/trace`` output, annotated the way ``ovn-detrace`` maps a trace back to
its logical flows: under each rule the packet hit, the pipeline stage, the rule's role (its
priority's name in the declaration) and its owner (VIP, route, backend, session), from its
cookie. Rules that are not lbapp's are marked as such. For a packet that opens a connection,
the trace ends at the controller or the switch's select group; :func:`opens_connection` and
:func:`connection_of` tell the CLI to ask the controller which backend it would get."""
from __future__ import annotations

import re
from typing import NamedTuple

from lbapp.config import Config
from lbapp.flows import Namer, owner_of, role_of
from lbapp.pipeline import cookies
from lbapp.pipeline.tables import BY_STAGE
from lbapp.shared import PROTOCOL_NAMES

# " 0. ip,nw_dst=117.78.6.19,tp_dst=80, priority 200, cookie 0x1b11000000000000"
_RULE = re.compile(r"^(?P<indent>\s*)(?P<table>\d+)\. .*?priority (?P<priority>\d+)(?:, cookie (?P<cookie>0x[0-9a-f]+))?")
# the session stage's rules a packet hits when no session holds its connection yet
_OPENING_ROLES = {("session", "new_connection"), ("session", "pick")}


class Hit(NamedTuple):
    """A rule of lbapp's that the traced packet hit: its stage (table name), role and owner."""

    stage: str
    role: str | None
    owner: str


def annotate(text: str, cfg: Config | None = None) -> tuple[str, list[Hit]]:
    """``text`` with a line under each rule naming its stage, role and owner; and those rules."""
    namer = Namer(cfg)
    out, hits = [], []
    for line in text.splitlines():
        out.append(line)
        rule = _RULE.match(line)
        if rule is None:
            continue
        pad = " " * (len(rule["indent"]) + len(rule["table"]) + 2)
        c = cookies.decode(int(rule["cookie"], 16)) if rule["cookie"] else None
        table = BY_STAGE.get(c.stage) if c else None
        if c is None or table is None or table.table_id != int(rule["table"]):
            out.append(f"{pad}[not lbapp's: cookie {rule['cookie'] or '0x0'}]")
            continue
        role = role_of(table, int(rule["priority"]))
        owner = owner_of(namer, table, role, c)
        hits.append(Hit(table.name, role, owner))
        out.append(f"{pad}[lbapp stage {table.name}: {role or '?'}" + (f", {owner}]" if owner else "]"))
    return "\n".join(out) + "\n", hits


def opens_connection(hits: list[Hit]) -> bool:
    """The packet found no session: its VIP's scheduler (controller or switch) picks its backend."""
    return any((hit.stage, hit.role) in _OPENING_ROLES for hit in hits)


def connection_of(flow: str) -> tuple[str, str] | None:
    """From an ofproto/trace flow (``tcp,nw_src=...,tp_src=...,nw_dst=...,tp_dst=...``): the
    VIP as ``ip:port/protocol`` and the client as ``ip:port``; None when a field is missing."""
    fields: dict[str, str] = {}
    for item in flow.split(","):
        name, _, value = item.strip().partition("=")
        fields[name] = value
    protocol = next((p for p in ("tcp", "udp") if p in fields), None)
    if protocol is None and fields.get("nw_proto", "").isdigit():
        protocol = PROTOCOL_NAMES.get(int(fields["nw_proto"]))
    if protocol not in ("tcp", "udp"):
        return None
    src_port = fields.get("tp_src") or fields.get(f"{protocol}_src")
    dst_port = fields.get("tp_dst") or fields.get(f"{protocol}_dst")
    if not (fields.get("nw_src") and fields.get("nw_dst") and src_port and dst_port):
        return None
    return f"{fields['nw_dst']}:{dst_port}/{protocol}", f"{fields['nw_src']}:{src_port}"
