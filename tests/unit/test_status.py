"""``lbapp status`` as a person reads it: the rendered tables of a balancer's snapshot."""
from pathlib import Path

from rich.console import Console

from lbapp.cli.status import render
from lbapp.config import load_config
from lbapp.service import Balancer

ROOT = Path(__file__).resolve().parents[2]


def text_of(state: dict) -> str:
    console = Console(record=True, width=200)
    console.print(render(state))
    return console.export_text()


def test_switch_held_vips_say_so_and_traffic_counts_show():
    """Before: a switch-picked VIP showed 0 sessions (the switch holds them, the controller lists
    none) and no bytes or packets were shown at all (issue 25)."""
    state = Balancer(load_config(ROOT / "topologies" / "cross_vlan.yaml")).snapshot(0.0)
    web = next(v for v in state["vips"] if v["name"] == "web")
    web["backends"][0] |= {"bytes": 1_234_567, "packets": 4_321}
    lines = text_of(state).splitlines()
    fast = next(line for line in lines if "stream-fast 117" in line)
    assert "in switch" in fast
    first = next(line for line in lines if "-> 10.11.12.11" in line)
    assert "1.2M" in first and "4.3k" in first


def _many(vips: int) -> Balancer:
    import sys

    import yaml

    from lbapp.config import parse_config
    sys.path.insert(0, str(ROOT / "bench"))
    from config_scale import generate
    return Balancer(parse_config(yaml.safe_load(generate(vips, 3))))


def test_past_200_backends_a_row_per_vip_those_needing_attention_first_unless_every_backend_is_asked_for():
    """Before (#27): a row per backend always, 100,000 rows at 10,000 VIPs (rich took minutes)."""
    state = _many(100).snapshot(0.0)  # 300 backends
    summary = text_of(state)
    assert "100 VIPs, 300 backends: a row per VIP" in summary and "vip99 " in summary and "->" not in summary
    console = Console(record=True, width=200)
    console.print(render(state, every_backend=True))
    assert console.export_text().count("  -> ") == 300
    state = _many(400).snapshot(0.0)
    state["vips"][321]["backends"][1]["health"] = "down"
    lines = text_of(state).splitlines()
    rows = [line for line in lines if " 117.78." in line]
    assert len(rows) == 200 and "vip321 " in rows[0]  # the one needing attention first
    assert any("200 more VIPs not shown (1 of all need attention)" in line for line in lines)
    small = text_of(_many(60).snapshot(0.0))  # 180 backends: listed
    assert small.count("  -> ") == 180


def test_status_reads_the_state_a_page_per_request_and_starts_over_when_vips_change(monkeypatch):
    """Before: one request for every VIP, which at 10,000 VIPs came close to the client's 5 s
    timeout; now a page of VIPs per request, read again if VIPs come or go between pages."""
    import argparse
    from urllib.parse import parse_qs, urlparse

    import pytest

    from lbapp.cli import status
    from lbapp.environment import EnvironmentProblem
    lb, asked = _many(2500), []

    def call(api, path, token_file=None):
        asked.append(path)
        query = {k: v[0] for k, v in parse_qs(urlparse(path).query).items()}
        if "vip" in query:
            return lb.snapshot(0.0, vip=query["vip"])
        state = lb.snapshot(0.0, offset=int(query["offset"]), limit=int(query["limit"]))
        if changing and query["offset"] != "0":
            state["vips_total"] += 1  # a VIP came between pages
        return state
    monkeypatch.setattr(status, "call", call)
    args = argparse.Namespace(api="http://x", token_file=None, vip=None)
    changing = False
    state = status.fetch(args)
    assert [v["name"] for v in state["vips"]] == [f"vip{i}" for i in range(2500)]
    assert asked == [f"/v1/state?offset={n}&limit={status.PAGE}" for n in (0, 1000, 2000)]
    asked.clear()
    assert [v["name"] for v in status.fetch(argparse.Namespace(api="http://x", token_file=None, vip="vip7"))["vips"]] \
        == ["vip7"]
    assert asked == ["/v1/state?vip=vip7"]
    changing = True
    with pytest.raises(EnvironmentProblem, match="VIPs changed while they were read, 3 times"):
        status.fetch(args)
