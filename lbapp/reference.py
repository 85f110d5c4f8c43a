"""Reference flow dumps (flows/*.flows): :func:`normalize` writes a dump reduced to what a
pipeline change would alter, :func:`denormalized` reads such a line back into the form the
flow explainer (lbapp.flows) parses."""
from __future__ import annotations

import re

from lbapp.pipeline import cookies

NOT_A_FLOW = re.compile(r"^\s*$|^(OFPST_FLOW|NXST_FLOW)")
_VOLATILE = re.compile(r"\b(duration|n_packets|n_bytes|idle_age|hard_age)=[^ ,]+,? ?")


def normalize(text: str, sessions: bool = True) -> str:
    """A dump reduced to what a pipeline change would alter: counters, durations and ages
    dropped, the cookie's generation and session ids blanked, lines sorted. ``sessions=False``
    leaves out per-connection flows (when ECMP decides which balancer gets a connection)."""
    lines = []
    for line in text.splitlines():
        if NOT_A_FLOW.match(line):
            continue
        line = _VOLATILE.sub("", line.strip())
        match = re.search(r"cookie=(0x[0-9a-f]+)", line)
        if match:
            value = int(match.group(1), 16)
            c = cookies.decode(value)
            if c is not None:
                value &= ~cookies.GEN_MASK
                shown = f"{value:#x}"
                # per-connection flows carry generation 0 (static ones, like the pins, 1..15)
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


# a session flow as normalize() writes it: no session id, no client port
_NORMALIZED_SESSION = re.compile(r"cookie=(0x[0-9a-f]+)\+session")
_ANY_PORT = re.compile(r"\b(tp_src|tcp_src|udp_src)=\*")


def denormalized(line: str, placeholder: int) -> tuple[str, bool]:
    """A line of a normalized dump (:func:`normalize`) in the form the parsers read: a session's
    cookie given ``placeholder`` as its id, its client port 0; and whether it was one."""
    m = _NORMALIZED_SESSION.search(line)
    if m is None:
        return line, False
    line = line.replace(m.group(0), f"cookie={int(m.group(1), 16) | placeholder:#x}")
    return _ANY_PORT.sub(r"\1=0", line), True
