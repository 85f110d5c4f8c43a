"""The topology files: each has a valid matching config, a graph, and a picture."""
from pathlib import Path

import pytest

from lbapp.config import load_config
from lbapp.lab import load_topology

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGIES = ["worked_example", "cross_vlan", "large", "two_balancers"]
pytest.importorskip("mininet.topo", reason="the topologies are Mininet topologies (scripts/setup.sh)")


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_topology_matches_its_config(name):
    module = load_topology(name)
    cfg = load_config(ROOT / "topologies" / f"{name}.yaml")
    lab = module.LAB
    assert {b.ip.exploded for v in cfg.vips for b in v.backends} <= {ip for _, ip in lab.backends}
    assert len(lab.balancer_switches) == len(cfg.all_balancers()) == len(lab.uplinks)
    assert len(lab.edge_switches) == len(cfg.edges)
    topo = next(iter(module.topos.values()))()
    switches = {s: int(topo.nodeInfo(s)["dpid"], 16) for s in topo.switches()}
    assert sorted(switches[s] for s in lab.balancer_switches) == sorted(b.dpid for _, b in cfg.all_balancers())
    assert sorted(switches[s] for s in lab.edge_switches) == sorted(e.dpid for e in cfg.edges)


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_topology_picture(name, tmp_path):
    from lbapp.topograph import draw, graph

    module = load_topology(name)
    g = graph(module)
    assert {d["role"] for _, d in g.nodes(data=True)} >= {"client", "router", "balancer", "edge", "backend"}
    path = draw(module, tmp_path / f"{name}.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (ROOT / "docs" / "topologies" / f"{name}.png").exists()  # the README shows it


def test_a_picture_names_each_node_with_its_addresses_and_keeps_its_title_whole():
    from lbapp.cli.draw import balancer_addresses
    from lbapp.topograph import COLOURS, graph, legend, title_of

    module = load_topology("cross_vlan")
    g = graph(module, balancer_addresses("cross_vlan"))
    labels = {n: d["label"].split("\n") for n, d in g.nodes(data=True)}
    assert labels["r0"] == ["r0", "200.1.1.1", "10.0.0.1", "10.11.12.1", "10.11.13.1"]
    assert labels["s1"] == ["s1", "10.0.0.2"] and labels["b3"] == ["b3", "10.11.13.13"]
    title = title_of(module)
    assert title.endswith("external DR director.") and all(len(line) <= 110 for line in title.splitlines())
    assert [kind for kind, _ in legend(g)] == ["client", "router", "balancer", "director", "edge", "backend"]
    assert len(set(COLOURS.values())) == len(COLOURS)  # no two kinds share a colour
