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
