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
