"""A Mininet topology as a networkx graph, and its picture: clients on the left, the router,
the balancer VLAN, the edge switches, the backends on the right, access links labelled with
their VLAN."""
from __future__ import annotations

from pathlib import Path

import networkx as nx

LAYERS = {"client": 0, "internet": 1, "router": 2, "balancer": 3, "director": 4, "core": 3, "edge": 4, "backend": 5}
# the balancer VLAN above the middle line, the backends' VLANs below it
BANDS = {"client": (-0.6, 0.6), "internet": (-0.35, -0.35), "router": (0.0, 0.0), "balancer": (0.25, 1.0),
         "core": (0.6, 0.6), "director": (0.9, 0.9), "edge": (-0.25, -0.9), "backend": (-0.05, -1.15)}
# one colour per kind, none shared: matplotlib's tab10 (made to tell kinds apart)
COLOURS = {"client": "#1f77b4", "internet": "#7f7f7f", "router": "#ff7f0e", "balancer": "#d62728",
           "director": "#9467bd", "core": "#bcbd22", "edge": "#2ca02c", "backend": "#17becf"}
TITLE_WIDTH = 110


def role_of(name: str, info: dict, lab) -> str:
    if name in lab.balancer_switches:
        return "balancer"
    if name in lab.edge_switches:
        return "edge"
    if name == lab.router:
        return "router"
    if name in lab.clients:
        return "client"
    if name in {b for b, _ in lab.backends}:
        return "backend"
    if info.get("isSwitch"):
        return "internet" if name in lab.internet_switches else "core"
    return "director"  # the only other hosts the topologies have


def graph(module, balancer_addresses: dict[int, str] | None = None) -> nx.MultiGraph:
    """Nodes carry role, label (name and addresses) and layer; edges carry the VLAN of the access
    port, if any. ``balancer_addresses``: a balancer switch's address by dpid (from its config)."""
    topo = next(iter(module.topos.values()))()
    lab = module.LAB
    addresses: dict[str, list[str]] = {}
    for name in topo.nodes():
        ip = topo.nodeInfo(name).get("ip")
        if ip:
            addresses.setdefault(name, []).append(ip.split("/")[0])
        dpid = topo.nodeInfo(name).get("dpid")
        if dpid and int(dpid, 16) in (balancer_addresses or {}):
            addresses.setdefault(name, []).append(balancer_addresses[int(dpid, 16)])
    for a, b, info in topo.links(withInfo=True):
        for end, params in ((a, info.get("params1", {})), (b, info.get("params2", {}))):
            if params.get("ip"):  # a router's interfaces
                addresses.setdefault(end, []).append(params["ip"].split("/")[0])
    g = nx.MultiGraph()
    for name in topo.nodes():
        role = role_of(name, topo.nodeInfo(name), lab)
        g.add_node(name, role=role, layer=LAYERS[role], label="\n".join([name, *addresses.get(name, [])]))
    for a, b, info in topo.links(withInfo=True):
        vlan = info.get("params2", {}).get("vlan") or info.get("params1", {}).get("vlan")
        g.add_edge(a, b, vlan=vlan)
    return g


def title_of(module) -> str:
    """The topology's first paragraph, whole, in lines of at most TITLE_WIDTH characters."""
    import textwrap

    first = " ".join(module.__doc__.strip().split("\n\n")[0].split())
    return textwrap.fill(first, TITLE_WIDTH)


def legend(g: nx.MultiGraph) -> list[tuple[str, str]]:
    """(kind, colour) of each kind of node the picture has, in COLOURS' order."""
    present = {d["role"] for _, d in g.nodes(data=True)}
    return [(role, colour) for role, colour in COLOURS.items() if role in present]


def _layout(g: nx.MultiGraph) -> dict[str, tuple[float, float]]:
    """Columns by role, rows spread within each role's band."""
    pos = {}
    by_role: dict[str, list[str]] = {}
    for n in sorted(g.nodes):
        by_role.setdefault(g.nodes[n]["role"], []).append(n)
    for role, names in by_role.items():
        top, bottom = BANDS[role]
        step = (bottom - top) / (len(names) - 1) if len(names) > 1 else 0
        for i, n in enumerate(names):
            pos[n] = (LAYERS[role], top + i * step if len(names) > 1 else (top + bottom) / 2)
    return pos


def draw(module, path: Path, balancer_addresses: dict[int, str] | None = None) -> Path:
    try:
        import matplotlib
    except ImportError:
        from lbapp.environment import EnvironmentProblem
        raise EnvironmentProblem("drawing needs matplotlib: pip install 'lbapp[draw]' (scripts/setup.sh does)"
                                 ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = graph(module, balancer_addresses)
    pos = _layout(g)
    fig, ax = plt.subplots(figsize=(11, 7.5))
    nx.draw_networkx_edges(g, pos, ax=ax, edge_color="#888888")
    from matplotlib.colors import to_rgb

    def tint(colour: str) -> tuple[float, ...]:  # light enough for black text, opaque over the links
        return tuple(0.55 + 0.45 * c for c in to_rgb(colour))

    nx.draw_networkx_nodes(g, pos, ax=ax, node_size=2000,
                           node_color=[tint(COLOURS[g.nodes[n]["role"]]) for n in g.nodes])
    nx.draw_networkx_labels(g, pos, ax=ax, labels={n: g.nodes[n]["label"] for n in g.nodes}, font_size=6.5)
    vlans: dict[tuple[str, str], list[str]] = {}
    for a, b, d in g.edges(data=True):
        if d["vlan"]:
            vlans.setdefault((a, b), []).append(str(d["vlan"]))
    labels = {k: "VLAN " + ", ".join(v) for k, v in vlans.items()}
    labels.update({(a, b): "trunk" for a, b in g.edges() if {g.nodes[a]["role"], g.nodes[b]["role"]} == {"edge"}})
    nx.draw_networkx_edge_labels(g, pos, ax=ax, font_size=6, edge_labels=labels)
    for role, colour in legend(g):
        ax.scatter([], [], color=tint(colour), s=80, label=role)
    ax.legend(loc="lower left", fontsize=7, frameon=False, ncol=4)
    ax.set_title(title_of(module), fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
