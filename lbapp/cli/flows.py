"""``lbapp flows``: dump a switch's flows (or read a saved dump) and explain them."""
from __future__ import annotations

import argparse
import gc
import json
import sys
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from rich.console import Console
from rich.table import Table

from lbapp.config import load_config
from lbapp.environment import EnvironmentProblem, ovs, require_ovs
from lbapp.flows import Explanation, Group, explain, explain_groups, normalize
from lbapp.pipeline.tables import TABLES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flows", help="explain a switch's flows by stage, VIP, backend and session")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("bridge", nargs="?", help="a live OVS bridge (runs ovs-ofctl dump-flows)")
    src.add_argument("-f", "--file", help="a saved `ovs-ofctl dump-flows` text ('-' for stdin)")
    p.add_argument("-c", "--config", help="the balancer config, to name VIPs, routes and backends")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="machine-readable output")
    out.add_argument("--normalize", action="store_true",
                     help="print the dump normalised (no counters, ages, generations; sorted), as in flows/")
    p.set_defaults(func=run)


def read_dump(bridge: str | None, file: str | None) -> str:
    if file:
        return sys.stdin.read() if file == "-" else Path(file).read_text()
    # Nicira flow stats (OpenFlow 1.0 + NXM) carry idle_age; OpenFlow 1.3's do not. Use them
    # when the bridge allows OpenFlow 1.0, else fall back to 1.3.
    require_ovs()
    for version in ("OpenFlow10", "OpenFlow13"):
        result = ovs("ovs-ofctl", "-O", version, "dump-flows", bridge, check=version == "OpenFlow13")
        if result.returncode == 0:
            return result.stdout


def run(args: argparse.Namespace) -> int:
    text = read_dump(args.bridge, args.file)
    if args.normalize:
        sys.stdout.write(normalize(text))
        return 0
    cfg = load_config(args.config) if args.config else None
    with _collector_paused():
        result = explain(text, cfg)
        if args.file and result.unparsed and not result.stages and not result.foreign:
            raise EnvironmentProblem(f"{args.file}: no flow in it could be read (is it the output of "
                                     "ovs-ofctl dump-flows?)")
        groups = explain_groups(read_groups(args.bridge), cfg) if args.bridge else []
        if args.json:
            sys.stdout.writelines(json_text(result.to_json() | {"groups": [asdict(g) for g in groups]}))
            print()
            return 0
        console = Console()
        show(result, console)
        show_groups(groups, console)
    return 0


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Explaining keeps every object it makes (a few per flow): the garbage collector's full
    passes over them find nothing to free and took a quarter of a 100k-session run."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_groups(bridge: str) -> str:
    return ovs("ovs-ofctl", "-O", "OpenFlow13", "dump-groups", bridge).stdout


def show_groups(groups: list[Group], console: Console) -> None:
    if not groups:
        return
    table = Table(title=f"groups: {len(groups)} (selection: switch: slots of 256 per backend)", title_justify="left")
    for col in ("group", "type", "owner", "slots per backend"):
        table.add_column(col, overflow="fold")
    for g in groups:
        table.add_row(f"{g.group_id:#x}", g.kind, g.owner, " ".join(f"{b}={n}" for b, n in g.slots.items()) or "-")
    console.print(table)


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _age(value: float | None) -> str:
    return "-" if value is None else f"{value:g}s"


def show(result: Explanation, console: Console) -> None:
    if not console.is_terminal:
        console.width = max(console.width, 160)
    for stage, flows in result.stages.items():
        t = TABLES[stage]
        table = Table(title=f"table {t.table_id} {stage}: {len(flows)} flows. {t.doc}", title_justify="left")
        for col in ("prio", "role", "owner", "match", "actions", "packets", "bytes"):
            table.add_column(col, overflow="fold")
        for f in sorted(flows, key=lambda f: -f.priority):
            if stage == "session" and f.role == "connection":
                continue  # listed below, one line per session
            table.add_row(str(f.priority), f.role or "?", f.owner, f.match or "*", f.actions, _count(f.packets),
                          _count(f.bytes))
        console.print(table)
    rows = [(str(s.session_id), s.client, s.vip, f"{s.backend} ({s.fabricated_mac})", _count(s.packets),
             _count(s.bytes), _age(s.idle_age), _age(s.duration))
            for s in sorted(result.sessions, key=lambda s: s.session_id)]
    print_table(console, lambda: _sessions_table(len(rows)), rows)
    if result.foreign:
        foreign = Table(title=f"not lbapp's: {len(result.foreign)} flows", title_justify="left")
        for col in ("table", "prio", "cookie", "match", "actions", "packets"):
            foreign.add_column(col, overflow="fold")
        for f in result.foreign:
            foreign.add_row(str(f.table), str(f.priority), f.cookie, f.match or "*", f.actions, str(f.packets))
        console.print(foreign)
    for line in result.unparsed:
        console.print(f"[yellow]could not parse:[/yellow] {line}")


def _sessions_table(count: int) -> Table:
    table = Table(title=f"sessions: {count}", title_justify="left")
    for col in ("id", "client", "VIP", "backend (fabricated MAC)", "packets", "bytes", "idle", "age"):
        table.add_column(col)
    return table


def print_table(console: Console, new_table: Callable[[], Table], rows: Sequence[tuple[str, ...]]) -> None:
    """Print ``rows`` in ``new_table()`` (columns without overflow settings) as rich would.

    rich takes ~50 s to lay out and render 100k rows. When the output is plain text with one
    line per row (no colour; every cell printed as is, no markup or emoji; the table no wider
    than the console), rich renders only a sample that gives every column its widest cell (so
    the same layout) and the other rows are formatted like the sample's; else rich does it all.
    """
    table = new_table()
    layout = _plain_layout(console, table, rows)
    if layout is None:
        _print_all(console, table, rows)
        return
    widths, sample = layout
    for i in sample:
        table.add_row(*rows[i])
    with console.capture() as capture:
        console.print(table)
    lines = capture.get().splitlines(keepends=True)
    head, shown, tail = lines[:-1 - len(sample)], lines[-1 - len(sample):-1], lines[-1:]
    line = _row_format(shown[0], widths) if shown else None
    if line is None or [line % rows[i] for i in sample] != shown:  # not one plain line per row
        _print_all(console, new_table(), rows)
        return
    console.file.writelines(head)
    for start in range(0, len(rows), 10000):
        console.file.write("".join([line % row for row in rows[start:start + 10000]]))
    console.file.writelines(tail)
    console.file.flush()


def _print_all(console: Console, table: Table, rows: Sequence[tuple[str, ...]]) -> None:
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _plain_layout(console: Console, table: Table, rows: Sequence[tuple[str, ...]]
                  ) -> tuple[list[int], list[int]] | None:
    """(column widths, rows holding each column's widest cell) when the output has no colour
    and every cell is printed as is: printable ASCII (one column per character), no "[" (rich
    markup), two colons only where rich finds no emoji code between them. Else None."""
    headers = [str(c.header) for c in table.columns]
    columns = list(zip(*rows))
    if console.color_system is not None or not rows or len(columns) != len(headers):
        return None
    for column in columns + [headers]:
        text = " ".join(column)  # one test for the column: " " is printable ASCII and not "["
        if not (text.isascii() and text.isprintable()) or "[" in text:
            return None
        if text.count(":") > 1 and any(cell.count(":") > 1 and console.render_str(cell).plain != cell
                                       for cell in set(column)):
            return None
    widths, sample = [], set()
    for header, column in zip(headers, columns):
        lengths = list(map(len, column))
        widest = max(lengths)
        widths.append(max(widest, len(header)))
        sample.add(lengths.index(widest))
    return widths, sorted(sample)


def _row_format(shown: str, widths: list[int]) -> str | None:
    """A %-format of one body row, its borders taken from a row rich rendered (``shown``)."""
    edge = 3 + widths[0]  # "│ " + cell + " " then the column border
    if len(shown) < edge + 2:
        return None
    left, between, right = (c.replace("%", "%%") for c in (shown[0], shown[edge], shown[-2]))
    return f"{left} " + f" {between} ".join(f"%-{w}s" for w in widths) + f" {right}\n"


# json.dump(indent=2)'s text, faster: with indent it encodes in pure Python (~15 s for 100k
# sessions); a list of flat objects is encoded here in one call of the C encoder with a marker
# separator ("\0" is escaped inside strings, so it only stands between members), then indented.
_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})
_STR_TYPE = frozenset({str})
_MARKED = json.JSONEncoder(separators=(",\0", ": "))


def json_text(value: Any, level: int = 0) -> Iterator[str]:
    """The text of ``json.dump(value, indent=2)`` (value nested ``level`` deep), in pieces."""
    pad = "  " * level
    if type(value) is dict and value and all(type(k) is str for k in value):
        for i, (key, item) in enumerate(value.items()):
            yield f"{'{' if i == 0 else ','}\n{pad}  {json.dumps(key)}: "
            yield from json_text(item, level + 1)
        yield f"\n{pad}}}"
    elif type(value) is list and value and all(map(_flat, value)):
        yield _flat_list(value, pad)
    else:
        yield json.dumps(value, indent=2).replace("\n", "\n" + pad)


def _flat(item: Any) -> bool:
    return type(item) is dict and bool(item) and _STR_TYPE.issuperset(map(type, item)) and \
        _SCALAR_TYPES.issuperset(map(type, item.values()))


def _flat_list(items: list[dict[str, Any]], pad: str) -> str:
    text = _MARKED.encode(items)  # [{"a": 1,\0"b": 2},\0{"a": 3,\0"b": 4}]
    # "},\0{" only ever joins two objects: a string ends in '"', a key starts with one
    between, member = f"\n{pad}  ", f"\n{pad}    "
    body = text[2:-2].replace("},\0{", "\1").replace(",\0", "," + member)
    body = body.replace("\1", f"{between}}},{between}{{{member}")
    return f"[{between}{{{member}{body}{between}}}\n{pad}]"
