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
    a = f" cookie=0x1b5c100000000001, duration=4.6s, table=40, n_packets=9, n_bytes=99, {flow}"
    b = f" cookie=0x1b5aa00000000001, duration=1.0s, table=40, n_packets=0, n_bytes=0, {flow}"
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
