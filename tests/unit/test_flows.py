"""lbapp flows on real dumps saved from a cross_vlan demo run (tests/data/, with the config
that run used: cookies carry VIP indexes, so a dump is read with its own config)."""
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from lbapp.config import load_config
from lbapp.flows import explain, normalize

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
CFG = load_config(DATA / "cross_vlan.yaml")


def test_balancer_dump_grouped_by_stage_with_owners():
    result = explain((DATA / "cross_vlan_s1.flows").read_text(), CFG)
    assert set(result.stages) == {"classify", "arp_proxy", "session", "translate", "next_hop"}
    owners = {f.owner for f in result.stages["classify"]}
    assert {"gateway r0 10.0.0.1", "VIP web 117.78.6.19:80/tcp", "route 10.11.13.0/24 via r0"} <= owners
    routes = [f for f in result.stages["next_hop"] if f.role == "route"]
    assert {f.owner for f in routes} == {"route 10.11.12.0/24 via r0", "route 10.11.13.0/24 via r0"}
    assert result.foreign == [] and result.unparsed == []


def test_sessions_shown_as_client_vip_backend():
    result = explain((DATA / "cross_vlan_s1.flows").read_text(), CFG)
    assert len(result.sessions) == 27  # 3 rounds: 9 web, 9 stream, 9 UDP connections
    web = [s for s in result.sessions if s.vip == "VIP web 117.78.6.19:80/tcp"]
    assert Counter(s.backend for s in web) == {"10.11.12.11": 3, "10.11.12.12": 3, "10.11.13.13": 3}
    assert all(s.client.startswith("200.1.1.19:") for s in result.sessions)
    one = next(s for s in web if s.backend == "10.11.13.13")
    assert one.fabricated_mac == "aa:bb:0a:0b:0d:0d" and one.packets > 0


def test_edge_dump_shows_snat_per_vip_and_backend():
    result = explain((DATA / "cross_vlan_s2.flows").read_text(), CFG)
    snat = {f.owner for f in result.stages["snat"] if f.role == "reply"}
    assert "VIP director 117.78.6.20:8080/tcp / backend 10.11.13.13" in snat
    assert "VIP web 117.78.6.19:80/tcp / backend 10.11.12.12" in snat


def test_foreign_and_of10_lines():
    text = (" cookie=0x0, duration=1.2s, table=0, n_packets=5, n_bytes=300, priority=65535,udp,tp_dst=67 actions=drop\n"
            " cookie=0x1b30000100000007, duration=0.004s, table=20, n_packets=2, n_bytes=120, idle_timeout=30, "
            "idle_age=3, priority=100,tcp,nw_src=200.1.1.19,nw_dst=117.78.6.19,tp_src=40000,tp_dst=80 "
            "actions=mod_dl_dst:aa:bb:0a:0b:0c:0d,resubmit(,30)\n")
    result = explain(text)
    assert [f.match for f in result.foreign] == ["udp,tp_dst=67"]
    assert result.sessions[0].backend == "10.11.12.13" and result.sessions[0].idle_age == 3


def test_normalize_drops_what_varies_between_runs():
    flow = "priority=148,ip,nw_dst=10.0.0.0/8 actions=drop"
    a = f" cookie=0x1b5d000000000001, duration=4.6s, table=40, n_packets=9, n_bytes=99, {flow}"
    b = f" cookie=0x1b55000000000001, duration=1.0s, table=40, n_packets=0, n_bytes=0, {flow}"
    assert normalize(a) == normalize(b) == f"cookie=0x1b50000000000001, table=40, {flow}\n"


def test_cli_json_and_table():
    args = [sys.executable, "-m", "lbapp.cli.main", "flows", "-f", str(DATA / "cross_vlan_s1.flows"),
            "-c", str(DATA / "cross_vlan.yaml")]
    out = subprocess.run(args + ["--json"], capture_output=True, text=True, cwd=ROOT)
    doc = json.loads(out.stdout)
    assert len(doc["sessions"]) == 27 and "next_hop" in doc["stages"]
    out = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    assert "sessions: 27" in out.stdout and "table 40 next_hop" in out.stdout


def test_groups_explained_as_slots_per_backend():
    from lbapp.config import load_config
    from lbapp.flows import explain_groups
    cfg = load_config(ROOT / "topologies" / "worked_example.yaml")
    bucket = "bucket=bucket_id:{i},actions=load:0x{ip:x}->NXM_NX_REG1[],set_field:{mac}->eth_dst,resubmit(,25)"
    macs = ["aa:bb:0a:0b:0c:0b", "aa:bb:0a:0b:0c:0b", "aa:bb:0a:0b:0c:0d"]
    text = ("OFPST_GROUP_DESC reply (OF1.3) (xid=0x2):\n"
            " group_id=452984833,type=select," + ",".join(bucket.format(i=i, ip=i, mac=m) for i, m in enumerate(macs))
            + "\n group_id=7,type=all,bucket=actions=output:1\n")
    ours, foreign = explain_groups(text, cfg)
    assert ours.owner.startswith("VIP web 117.78.6.19:80/tcp") and ours.kind == "select"
    assert ours.slots == {"10.11.12.11": 2, "10.11.12.13": 1}
    assert foreign.owner == "not lbapp's" and foreign.slots == {"?": 1}


# --- the fast path for session flows (lbapp/flows.py, _SESSION_LINE) against the ovs parser ---

sys.path.insert(0, str(ROOT / "bench"))
import flows_explain  # noqa: E402  (the benchmark's dump generator)

from lbapp import flows as flows_module  # noqa: E402


def _odd(line: str, rng) -> str:
    """One session line bent the way a dump from another OVS, an older tool or a hand could be."""
    swaps = [
        (", send_flow_rem ", ", "),  # no flags
        (", send_flow_rem ", ", send_flow_rem idle_age=3, "),  # OFPFlow cannot read this
        (", send_flow_rem ", ", idle_age=7, hard_age=2, "),
        (", send_flow_rem ", ", check_overlap "),
        ("idle_timeout=", "hard_timeout=60, idle_timeout="),  # out of OVS's order
        ("idle_timeout=20, ", "idle_timeout=20, hard_timeout=60, "),
        ("idle_timeout=20, ", "importance=5, "),
        ("idle_timeout=20, ", ""),
        ("table=20, ", ""),  # no table: table 0 to OFPFlow
        ("duration=", "table=20, duration="),
        ("cookie=0x1b3", "cookie=0x1B3"),
        ("cookie=0x1b3", "cookie=0x2b3"),  # not lbapp's
        ("table=20,", "table=21,"),
        ("priority=100,", "priority=99,"),
        ("priority=100,", "priority=0100,"),
        ("priority=100,tcp,", "tcp,priority=100,"),
        ("tp_src=", "tcp_src="),
        ("tp_src=", "tp_src=0"),
        ("tp_dst=", "tp_dst=9"),  # 5 digits, some above 65535
        ("nw_src=200.1.", "nw_src=200.001."),
        ("nw_dst=117.78.6.19", "nw_dst=117.78.6.0/24"),
        ("->eth_dst", "->eth_src"),
        ("set_field:aa:bb", "set_field:AA:BB"),
        ("goto_table:30", "resubmit(,30)"),
        ("goto_table:30", "goto_table:30,output:2"),
        ("goto_table:30", "goto_table:030"),
        (" actions=", "  actions="),
        ("duration=", "duration=1"),
        ("s, table=", ".5s, table="),
    ]
    old, new = rng.choice(swaps)
    line = line.replace(old, new, 1)
    if rng.random() < 0.2:
        line = line.lstrip() if rng.random() < 0.5 else line + "  "
    return line


def _mixed_dump(seed: int = 1) -> list[str]:
    import random
    rng = random.Random(seed)
    of13 = flows_explain.session_lines(150, seed=seed)
    of10 = flows_explain.session_lines(100, seed=seed + 1, of10=True)
    odd = [_odd(line, rng) for line in rng.sample(of13 + of10, 120)]
    broken = [" cookie=0x1b30000100000001, duration=1.5s, table=20 priority=100,tcp",  # no actions
              "cookie=0x1b30000100000002 actions=drop actions=drop", "not a flow at all"]
    lines = flows_explain.static_lines() + of13 + of10 + odd + broken
    rng.shuffle(lines)
    return ["NXST_FLOW reply (xid=0x4):"] + lines


def test_fast_path_reads_session_flows_as_the_ovs_parser_does():
    lines = _mixed_dump()
    taken = 0
    for line in lines:
        fast = flows_module._fast_parse(line)
        if fast is None:
            continue
        taken += 1
        reference = flows_module._reference_parse(line)
        assert reference is not None, line
        assert fast[0] == reference[0], line
        assert flows_module._endpoints(fast[1]) == flows_module._endpoints(reference[1]), line
    assert taken >= 250  # the plain OpenFlow 1.3 and 1.0 session lines at least


def test_explain_with_and_without_the_fast_path_agree(monkeypatch):
    text = "\n".join(_mixed_dump(seed=2))
    for cfg in (CFG, None):
        fast = explain(text, cfg)
        with monkeypatch.context() as m:
            m.setattr(flows_module, "_fast_parse", lambda line: None)
            reference = explain(text, cfg)
        assert fast == reference
        assert fast.to_json() == reference.to_json()
        assert len(fast.sessions) >= 250 and fast.unparsed and fast.foreign


def test_malformed_session_line_is_unparsed():
    good = flows_explain.session_lines(1)[0]
    for bad in (good.replace("tp_src=", "tp_src=4x"), good.replace("tp_src=1025", "tp_src=70000"),
                good.replace(" actions=", " "), good.replace("send_flow_rem", "send_flow_rem idle_age=1,")):
        result = explain(bad, CFG)
        assert result.unparsed == [bad.strip()] and not result.sessions, bad
    assert len(explain(good, CFG).sessions) == 1


def test_to_json_is_what_asdict_gives():
    from dataclasses import asdict
    result = explain("\n".join(_mixed_dump(seed=3)), CFG)
    assert result.to_json() == {"stages": {k: [asdict(f) for f in v] for k, v in result.stages.items()},
                                "sessions": [asdict(s) for s in result.sessions],
                                "foreign": [asdict(f) for f in result.foreign], "unparsed": result.unparsed}
    assert list(result.to_json()["sessions"][0]) == [f for f in asdict(result.sessions[0])]


# --- the CLI's fast output paths against rich and json ---

def test_json_text_is_json_dump_indent_2():
    from lbapp.cli.flows import json_text
    doc = explain("\n".join(_mixed_dump(seed=4)), CFG).to_json()
    docs = [doc, {}, [], {"a": []}, {"a": {}}, [{"x": 1}], [{}], [[1, 2], {"k": [{"a": None}]}],
            {1: "int key", "b": [{"s": 'x},\0{"y": "\x01é\n', "f": float("nan"), "t": True, "n": None}]},
            [{"a": 1, "b": [1]}, {"a": 2}], "text", 3.5, None]
    for value in docs:
        assert "".join(json_text(value)) == json.dumps(value, indent=2)


def _render(rows, width=160, fast=True):
    """The sessions table as printed to a file (no colour): by print_table, or all by rich."""
    import io
    from rich.console import Console
    from lbapp.cli import flows as cli_flows
    console = Console(file=io.StringIO(), width=width)
    if fast:
        cli_flows.print_table(console, lambda: cli_flows._sessions_table(len(rows)), rows)
    else:
        cli_flows._print_all(console, cli_flows._sessions_table(len(rows)), rows)
    return console.file.getvalue()


def _session_rows(text, cfg=CFG):  # as lbapp.cli.flows.show makes them
    from lbapp.cli.flows import _age
    return [(str(s.session_id), s.client, s.vip, f"{s.backend} ({s.fabricated_mac})", str(s.packets),
             str(s.bytes), _age(s.idle_age), _age(s.duration))
            for s in sorted(explain(text, cfg).sessions, key=lambda s: s.session_id)]


def test_sessions_table_printed_as_rich_prints_it(monkeypatch):
    from lbapp.cli import flows as cli_flows
    rows = _session_rows("\n".join(_mixed_dump(seed=5)))
    calls = []
    real = cli_flows._print_all
    monkeypatch.setattr(cli_flows, "_print_all", lambda *a: calls.append(1) or real(*a))
    assert _render(rows) == _render(rows, fast=False)
    assert calls == [1]  # the reference only: the fast path printed
    # odd cells; those the fast path leaves to rich: markup, emoji codes, non-ASCII, tabs, wide
    # text; and a narrow console
    odd = ("VIP [bold]x[/bold]", "VIP :ab: x", "a:b:c", "VIP é", "tab\tx", "VIP " + "w" * 120, "VIP  two  spaces ",
           " lead", "", " ", "100%", "%s")
    for case in [rows[:5] + [rows[5][:2] + (v,) + rows[5][3:]] for v in odd] + [rows[:3], []]:
        assert _render(case) == _render(case, fast=False)
    assert _render(rows, width=80) == _render(rows, width=80, fast=False)


def test_cli_table_of_a_dump_without_config():
    args = [sys.executable, "-m", "lbapp.cli.main", "flows", "-f", "-"]
    text = flows_explain.dump(50)
    out = subprocess.run(args, input=text, capture_output=True, text=True, cwd=ROOT)
    assert "sessions: 50" in out.stdout and "117.78.6.19:80 " in out.stdout and out.returncode == 0


def test_the_projects_own_reference_dumps_read_whole():
    """Before: the normalized session lines of flows/*.flows were "could not parse" and the
    sessions 0 (issue 25). Each line reads now; a session shows its client port as blanked."""
    from lbapp.config import load_config as load

    for dump in sorted((ROOT / "flows").glob("*.flows")):
        topology = dump.name.split(".")[0]
        text = dump.read_text()
        result = explain(text, load(ROOT / "topologies" / f"{topology}.yaml"))
        assert result.unparsed == [], (dump.name, result.unparsed[:2])
        assert len(result.sessions) == text.count("+session"), dump.name
        assert all(s.client.endswith(":*") for s in result.sessions)
        assert normalize(normalize(text)) == normalize(text)


def test_flows_of_a_file_that_is_no_dump_is_one_line():
    out = subprocess.run([sys.executable, "-m", "lbapp.cli.main", "flows", "-f", "README.md"], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 1 and out.stderr == ("error: README.md: no flow in it could be read (is it the output "
                                                  "of ovs-ofctl dump-flows?)\n")
