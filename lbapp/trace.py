"""``ovs-appctl ofproto/trace`` output, annotated the way ``ovn-detrace`` maps a trace back to
its logical flows: under each rule the packet hit, the pipeline stage, the rule's role (its
priority's name in the declaration) and its owner (VIP, route, backend, session), from its
cookie. Rules that are not lbapp's are marked as such."""
from __future__ import annotations

import re

from lbapp.config import Config
from lbapp.flows import Namer, owner_of, role_of
from lbapp.pipeline import cookies
from lbapp.pipeline.tables import BY_STAGE

# " 0. ip,nw_dst=117.78.6.19,tp_dst=80, priority 200, cookie 0x1b10001000000000"
_RULE = re.compile(r"^(?P<indent>\s*)(?P<table>\d+)\. .*?priority (?P<priority>\d+)(?:, cookie (?P<cookie>0x[0-9a-f]+))?")


def annotate(text: str, cfg: Config | None = None) -> str:
    """``text`` with a line under each rule naming its stage, role and owner."""
    namer = Namer(cfg)
    out = []
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
        out.append(f"{pad}[lbapp stage {table.name}: {role or '?'}" + (f", {owner}]" if owner else "]"))
    return "\n".join(out) + "\n"
